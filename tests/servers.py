"""Helpers for the tests that run the real CLI and server in subprocesses (loopback only)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(env, *args, input=None) -> subprocess.CompletedProcess:
    """``python -m weanalysis ARGS`` with ``env``; output captured, exit status not checked."""
    return subprocess.run(
        [sys.executable, "-m", "weanalysis", *args],
        env=env,
        input=input,
        capture_output=True,
        check=False,
    )


def wait_healthy(port: int, proc: subprocess.Popen | None = None, seconds: float = 30) -> None:
    """Until /healthz answers; fails early if ``proc`` has died."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the server exited with status {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start") from None
            time.sleep(0.05)

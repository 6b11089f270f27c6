#!/usr/bin/env python3
"""Vendor the dashboard's JavaScript from the npm registry, pinned and checked.

The page runs offline, so its third-party files are committed under
``src/weanalysis/web/vendor/``. This script makes them reproducible:

    python scripts/vendor_web.py            # npm pack the pins, verify, extract, write the manifest
    python scripts/vendor_web.py --verify   # npm pack again and compare with the committed files
    python scripts/vendor_web.py --check    # offline: committed files match the manifest's SHA-256

Each pin names the package version and the SHA-512 of its tarball as the registry publishes it
(``npm view echarts@6.1.0 dist.integrity``); a tarball that does not match is refused. To move a
pin, change ``PINS`` (version and integrity) and run the script.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parent.parent / "src" / "weanalysis" / "web" / "vendor"
MANIFEST = VENDOR / "manifest.json"

# (package, version, tarball integrity, {path in the tarball: vendored file name})
PINS = [
    (
        "echarts",
        "6.1.0",
        "sha512-q0yaFPggC9FUdsWH4blavRWFmxdrIodbkoKNAjJudAI6CA9gNPxHtV2RcZNEepZVlk4yvBYkOkbk6HIVpIyHZA==",
        {
            "package/dist/echarts.min.js": "echarts.min.js",
            "package/LICENSE": "LICENSE-echarts.txt",
            "package/NOTICE": "NOTICE-echarts.txt",
            "package/licenses/LICENSE-d3": "LICENSE-d3.txt",
        },
    ),
    (
        # ECharts 5+ ship no maps; 4.9.0's china.json (short province names) is the last one
        "echarts",
        "4.9.0",
        "sha512-+ugizgtJ+KmsJyyDPxaw2Br5FqzuBnyOWwcxPKO6y0gc5caYcfnEUIlNStx02necw8jmKmTafmpHhGo4XDtEIA==",
        {"package/map/json/china.json": "china.json"},
    ),
]


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npm_pack(spec: str, dest: Path) -> bytes:
    out = subprocess.run(
        ["npm", "pack", "--json", "--ignore-scripts", "--pack-destination", str(dest), spec],
        cwd=dest,
        check=True,
        capture_output=True,
        text=True,
    )
    (info,) = json.loads(out.stdout)
    return (dest / info["filename"]).read_bytes()


def fetch() -> dict[str, tuple[bytes, dict]]:
    """{vendored name: (bytes, manifest entry)} from freshly packed, integrity-checked tarballs."""
    files: dict[str, tuple[bytes, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="vendor-web-") as tmp:
        for name, version, pinned, members in PINS:
            spec = f"{name}@{version}"
            tgz = npm_pack(spec, Path(tmp))
            if integrity(tgz) != pinned:
                sys.exit(f"{spec}: tarball integrity {integrity(tgz)} is not the pinned {pinned}")
            path = Path(tmp) / f"{name}-{version}.tgz"
            path.write_bytes(tgz)
            with tarfile.open(path) as tar:
                for member, dest in members.items():
                    data = tar.extractfile(member).read()
                    entry = {"package": spec, "integrity": pinned, "path": member[8:]}
                    files[dest] = (data, {**entry, "sha256": sha256(data), "bytes": len(data)})
    return files


def check() -> list[str]:
    """Problems with the committed files (empty when they match the manifest and the pins)."""
    problems = []
    manifest = json.loads(MANIFEST.read_text())
    pinned = {f"{n}@{v}": i for n, v, i, _ in PINS}
    expected = {dest for *_, members in PINS for dest in members.values()}
    if set(manifest["files"]) != expected:
        problems.append(f"manifest lists {sorted(manifest['files'])}, the pins {sorted(expected)}")
    for dest, entry in manifest["files"].items():
        if pinned.get(entry["package"]) != entry["integrity"]:
            problems.append(f"{dest}: {entry['package']} is not pinned with this integrity")
        path = VENDOR / dest
        if not path.exists():
            problems.append(f"{dest}: missing")
        elif sha256(path.read_bytes()) != entry["sha256"]:
            problems.append(f"{dest}: SHA-256 differs from the manifest")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="offline check of the committed files")
    mode.add_argument("--verify", action="store_true", help="re-pack and compare, write nothing")
    args = ap.parse_args()
    if args.check:
        problems = check()
        for p in problems:
            print(p, file=sys.stderr)
        sys.exit(1 if problems else 0)
    files = fetch()
    if args.verify:
        bad = [d for d, (data, _) in files.items() if (VENDOR / d).read_bytes() != data]
        if bad or check():
            sys.exit(f"committed files differ from the registry's: {bad or check()}")
        print(f"{len(files)} vendored files are byte-identical to the pinned packages")
        return
    VENDOR.mkdir(parents=True, exist_ok=True)
    for dest, (data, _) in files.items():
        (VENDOR / dest).write_bytes(data)
    manifest = {
        "comment": "Written by scripts/vendor_web.py; checked by tests/test_dashboard_assets.py",
        "files": {d: entry for d, (_, entry) in sorted(files.items())},
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    for dest, (_, entry) in sorted(files.items()):
        print(f"{dest:24} {entry['bytes']:>9} B  {entry['package']}:{entry['path']}")


if __name__ == "__main__":
    main()

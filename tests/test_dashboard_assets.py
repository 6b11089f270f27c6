"""The dashboard's files: vendored JavaScript matches its pins, and every file ships in the wheel."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import tomllib
from importlib import resources
from pathlib import Path

from weanalysis.dims import regions

ROOT = Path(__file__).resolve().parent.parent
WEB = resources.files("weanalysis") / "web"


def _vendor_script():
    spec = importlib.util.spec_from_file_location("vendor_web", ROOT / "scripts" / "vendor_web.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_vendored_files_match_the_manifest_and_the_pins():
    vendor = _vendor_script()
    assert vendor.check() == []
    manifest = json.loads((WEB / "vendor" / "manifest.json").read_text())
    packages = {e["package"] for e in manifest["files"].values()}
    assert packages == {"echarts@6.1.0", "echarts@4.9.0"}
    assert manifest["files"]["china.json"]["package"] == "echarts@4.9.0"
    assert manifest["files"]["echarts.min.js"]["package"] == "echarts@6.1.0"


def test_every_web_file_is_package_data():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["weanalysis"]
    web = ROOT / "src" / "weanalysis" / "web"
    files = [p.relative_to(web.parent).as_posix() for p in web.rglob("*") if p.is_file()]
    assert len(files) >= 9
    missing = [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)]
    assert missing == []


def test_the_map_has_every_province_under_its_short_name():
    geo = json.loads((WEB / "vendor" / "china.json").read_text(encoding="utf-8"))
    on_map = {f["properties"]["name"]: int(f["id"]) // 10000 for f in geo["features"]}
    assert on_map == {p.short_name: p.id for p in regions.PROVINCES.values()}


def test_the_page_loads_nothing_from_elsewhere():
    for name in ("index.html", "app.js", "style.css"):
        # an SVG namespace in a data: URL names, it does not load
        text = re.sub(r"xmlns='[^']*'", "", (WEB / name).read_text(encoding="utf-8"))
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), name
    html = (WEB / "index.html").read_text(encoding="utf-8")
    for src in re.findall(r'(?:src|href)="/static/([^"?]+)', html):
        assert (WEB / src).is_file(), src

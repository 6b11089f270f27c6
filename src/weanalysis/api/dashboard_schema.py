"""The dashboard's own JSON and CSV: the canonical portrait result, with totals and shares.

The models describe the documents in the OpenAPI schema; the renderers build them straight from
:class:`PortraitResult` (the core's answer), so the page shows exactly what the WeChat API returns,
plus each set's size and each value's share of it.
"""

from __future__ import annotations

import csv
import io
from typing import Literal

import orjson
from pydantic import BaseModel, Field, create_model

from weanalysis.dims import BY_LIST, DIMENSIONS, LISTS, Dimension, regions
from weanalysis.portrait.explore import Trend
from weanalysis.portrait.query import Item, PortraitResult, UserSet
from weanalysis.portrait.withhold import reason
from weanalysis.store.days import day_date

USER_LABELS = {"new": "新用户", "active": "活跃用户"}
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# -- models (the OpenAPI document) ---------------------------------------------------------------


class ErrorBody(BaseModel):
    code: str = Field(examples=["unauthenticated"])
    message: str = Field(examples=["请先登录"])


class ErrorOut(BaseModel):
    """Every error of the dashboard API, with a 4xx (or 500) status."""

    error: ErrorBody


class SignIn(BaseModel):
    appid: str = Field(examples=["wxdemo0000000000"])
    secret: str = Field(examples=["demo-secret-0000"])


class DataDays(BaseModel):
    """The first and last day with visits, in the app's time zone; null when there are none."""

    first: str | None = Field(examples=["2024-04-01"])
    last: str | None = Field(examples=["2024-05-30"])


class SessionOut(BaseModel):
    appid: str
    timezone: str = Field(examples=["Asia/Shanghai"])
    yesterday: str = Field(description="Yesterday in the app's time zone (yyyy-mm-dd)")
    expires_at: int = Field(description="When the session ends (epoch seconds)")
    data_days: DataDays
    min_users: int = Field(
        description="The app's own threshold: values of fewer users are withheld everywhere"
    )
    imported: bool = Field(
        description="The app's portraits are imported documents (no segments, cross-tabs or trends)"
    )


class SignedInApp(BaseModel):
    appid: str
    expires_at: int


class SessionsOut(BaseModel):
    apps: list[SignedInApp]


class ItemOut(BaseModel):
    id: int = Field(examples=[4401])
    name: str = Field(examples=["广州"])
    value: int = Field(description="Users with this value", examples=[234])
    share: float = Field(description="value / total of the user set (0 when empty)")


class ProvinceOut(ItemOut):
    map_name: str | None = Field(
        description="Short name as on the China map (广东); null for 未知 and 海外",
        examples=["广东"],
    )


class DeviceOut(BaseModel):
    name: str = Field(examples=["苹果iPhone 13"])
    value: int
    share: float


class CellOut(BaseModel):
    row: int | str = Field(description="The row list's id (a device: its name)", examples=[1])
    col: int | str = Field(examples=[3])
    value: int = Field(description="Users with both values", examples=[12])
    share: float = Field(description="value / total of the user set")


class CrosstabOut(BaseModel):
    """Distinct users per pair of values; cells with value > 0, sorted by row then col. Without
    withheld cells they add up to the set's total."""

    rows: str = Field(examples=["genders"])
    cols: str = Field(examples=["ages"])
    cells: list[CellOut]


def _item_model(dim: Dimension) -> type[BaseModel]:
    if not dim.has_ids:
        return DeviceOut
    return ProvinceOut if dim.list_name == "province" else ItemOut


def _list_description(dim: Dimension) -> str:
    return f"{dim.label}" + (f" (top {dim.top})" if dim.top else "")


# One field per list of the dimension table, in its order (the OpenAPI document follows it).
UserSetOut = create_model(
    "UserSetOut",
    total=(
        int | None,
        Field(
            description="Users in the set; null only when a segment of fewer than min_users "
            "users is withheld"
        ),
    ),
    **{
        d.list_name: (list[_item_model(d)], Field(description=_list_description(d)))  # type: ignore[valid-type]
        for d in DIMENSIONS
    },
    crosstab=(CrosstabOut | None, Field(None, description="Only with the crosstab parameter")),
)

WithheldSetOut = create_model(
    "WithheldSetOut",
    __doc__="How many values of each list (and cross-tab cells, and the segment total) were "
    "left out.",
    **{d.list_name: (int, Field(description=d.label)) for d in DIMENSIONS},
    crosstab=(int | None, None),
    total=(int | None, Field(None, description="1 when the segment's total was withheld")),
)


class WithheldOut(BaseModel):
    """Present when small groups are withheld (the app's min_users, or a larger one asked)."""

    min_users: int = Field(examples=[5])
    reason: str
    new: WithheldSetOut
    active: WithheldSetOut


class WindowOut(BaseModel):
    begin: str = Field(examples=["2024-05-24"])
    end: str = Field(examples=["2024-05-30"])
    days: int = Field(examples=[7])
    ref_date: str = Field(description="As WeChat writes it", examples=["20240524-20240530"])
    new: UserSetOut
    active: UserSetOut
    withheld: WithheldOut | None = None


class PortraitOut(WindowOut):
    appid: str
    data_days: DataDays
    where: list[str] = Field(
        description="The segment's conditions, canonical (list name=id; devices by name); "
        "empty for all users",
        examples=[["province=44", "genders=2"]],
    )
    previous: WindowOut | None = Field(
        None, description="With compare=true: the window of the same length ending the day before"
    )


class TrendItemOut(BaseModel):
    id: int | None = Field(None, description="Absent for devices")
    name: str
    value: int
    share: float


class TrendDayOut(BaseModel):
    date: str = Field(examples=["2024-05-24"])
    total: int | None = Field(description="Users of the day (null: a small segment, withheld)")
    items: list[TrendItemOut]


class TrendWithheldOut(BaseModel):
    min_users: int
    reason: str
    items: int
    totals: int


class TrendOut(BaseModel):
    appid: str
    dim: str = Field(examples=["platforms"])
    users: Literal["new", "active"]
    where: list[str]
    days: list[TrendDayOut]
    withheld: TrendWithheldOut | None = None


# -- rendering -----------------------------------------------------------------------------------


def iso_day(day: int | None) -> str | None:
    return None if day is None else day_date(day).isoformat()


def _share(value: int, total: int) -> float:
    return round(value / total, 6) if total else 0.0


def _items(name: str, items: list[Item], total: int) -> list[dict]:
    out = []
    for it in items:
        doc: dict = {"name": it.name, "value": it.value, "share": _share(it.value, total)}
        if it.id is not None:
            doc = {"id": it.id, **doc}
        if name == "province":
            p = regions.PROVINCES.get(it.id)
            doc["map_name"] = p.short_name if p else None
        out.append(doc)
    return out


def user_set_doc(us: UserSet) -> dict:
    total = us.total or 0
    doc = {"total": us.total, **{n: _items(n, us.lists.get(n, []), total) for n in LISTS}}
    if us.crosstab is not None:
        doc["crosstab"] = {
            "rows": us.crosstab.rows,
            "cols": us.crosstab.cols,
            "cells": [
                {"row": r, "col": c, "value": v, "share": _share(v, total)}
                for r, c, v in us.crosstab.cells
            ],
        }
    return doc


def _window_doc(result: PortraitResult) -> dict:
    q = result.query
    doc = {
        "begin": iso_day(q.begin),
        "end": iso_day(q.end),
        "days": q.days,
        "ref_date": q.ref_date,
        "new": user_set_doc(result.new),
        "active": user_set_doc(result.active),
    }
    if result.min_users:
        doc["withheld"] = {
            "min_users": result.min_users,
            "reason": reason(result.min_users),
            "new": result.new.withheld,
            "active": result.active.withheld,
        }
    return doc


def portrait_body(result: PortraitResult) -> bytes:
    """The cacheable part of the portrait document (it depends only on the window's answer)."""
    doc = _window_doc(result)
    doc["where"] = list(result.where)
    if result.previous is not None:
        doc["previous"] = _window_doc(result.previous)
    return orjson.dumps(doc)


def trend_body(t: Trend) -> bytes:
    """The cacheable part of the trend document (everything but the appid)."""
    doc: dict = {
        "dim": t.dim,
        "users": t.users,
        "where": list(t.where),
        "days": [
            {
                "date": iso_day(d.day),
                "total": d.total,
                "items": [
                    {
                        **({} if it.id is None else {"id": it.id}),
                        "name": it.name,
                        "value": it.value,
                        "share": _share(it.value, d.total or 0),
                    }
                    for it in d.items
                ],
            }
            for d in t.days
        ],
    }
    if t.min_users:
        doc["withheld"] = {"min_users": t.min_users, "reason": reason(t.min_users), **t.withheld}
    return orjson.dumps(doc)


def with_appid(appid: str, body: bytes) -> bytes:
    return orjson.dumps({"appid": appid})[:-1] + b"," + body[1:]


def portrait_document(appid: str, body: bytes, first: int | None, last: int | None) -> bytes:
    """The whole :class:`PortraitOut` document around a cached body from :func:`portrait_body`."""
    head = orjson.dumps(
        {"appid": appid, "data_days": {"first": iso_day(first), "last": iso_day(last)}}
    )
    return head[:-1] + b"," + body[1:]


def _cell(value: object) -> object:
    # a name from the records that starts like a formula must not run in a spreadsheet
    if isinstance(value, str) and value.startswith(CSV_FORMULA_START):
        return "'" + value
    return value


def portrait_csv(doc: dict, users: Literal["new", "active"]) -> bytes:
    """One user set of a portrait document as CSV: UTF-8 with a BOM, so Excel reads Chinese."""
    us = doc[users]
    period = doc["begin"] if doc["days"] == 1 else f"{doc['begin']} 至 {doc['end']}"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["时间段", "用户类型", "维度", "编号", "名称", "用户数", "占比"])
    label = USER_LABELS[users]
    total = "" if us["total"] is None else us["total"]
    w.writerow([period, label, "合计", "", label, total, "100.00%" if us["total"] else ""])
    if doc.get("where"):
        w.writerow([period, label, "筛选条件", "", _cell(" 且 ".join(doc["where"])), "", ""])
    withheld = doc.get("withheld")
    if withheld:  # nothing is dropped silently: say what is missing and why
        k, counts = withheld["min_users"], withheld[users]
        if counts.get("total"):
            w.writerow([period, label, "未显示", "", f"合计少于 {k} 人，不显示", "", ""])
        for name in LISTS:
            if counts.get(name):
                what = f"{counts[name]} 项少于 {k} 人，不显示"
                w.writerow([period, label, BY_LIST[name].label, "", what, "", ""])
    for name in LISTS:
        for it in us[name]:
            w.writerow(
                [
                    period,
                    label,
                    BY_LIST[name].label,
                    it.get("id", ""),
                    _cell(it["name"]),
                    it["value"],
                    f"{it['share'] * 100:.2f}%",
                ]
            )
    return "\ufeff".encode() + buf.getvalue().encode("utf-8")

"""The exact portrait of SPEC.md section 3, over any :class:`PortraitSource`.

The source gives the window's active users with their visit columns (latest known value in the
window) and first-visit days, and person columns as of the end of the window; new users are the
active users whose first visit day is ``>= b``. Then one ``bincount`` per column, and each list of
:data:`weanalysis.dims.DIMENSIONS` reads its column's counts: everything about a list (its ids,
names, order, top N) comes from that table.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from weanalysis.dims import DIMENSIONS, PERSON_COLUMNS, UNKNOWN, Column, Dimension
from weanalysis.portrait.query import Item, PortraitQuery, PortraitResult, UserSet
from weanalysis.portrait.source import PortraitSource


@dataclass
class UserValues:
    """Every active user of a window with the one value the portrait gives them per column."""

    users: np.ndarray
    is_new: np.ndarray  # bool per user
    values: dict[str, np.ndarray]  # column -> code per user
    names: dict[str, list[str | None]]  # column numbered by the data -> the name of each code

    def __len__(self) -> int:
        return len(self.users)


def user_values(
    source: PortraitSource, q: PortraitQuery, columns: Collection[str] | None = None
) -> UserValues:
    """The window's users and their values; ``columns`` limits the person columns looked up
    (a trend of one list needs only its own column)."""
    w = source.window(q.begin, q.end)
    values = dict(w.values)
    for c in PERSON_COLUMNS:
        if columns is None or c.name in columns:
            values[c.name] = source.person_values(c.name, w.users, q.end)
    return UserValues(w.users, w.first_day >= q.begin, values, _names(source))


def _names(source: PortraitSource) -> dict[str, list[str | None]]:
    """The names of the codes of every column the data numbers (devices)."""
    return {d.column.name: source.value_names(d.column.name) for d in DIMENSIONS if not d.has_ids}


def column_size(column: Column, uv: UserValues) -> int:
    return column.size if column.size is not None else len(uv.names[column.name])


def ranked_items(dim: Dimension, counts: np.ndarray, names: list[str | None] | None) -> list[Item]:
    """A list of the document from the counts per code of its column."""
    codes = np.flatnonzero(counts)
    if dim.has_ids:
        per_id: dict[int, int] = {}
        for i, c in zip(dim.list_id(codes).tolist(), counts[codes].tolist(), strict=True):
            per_id[i] = per_id.get(i, 0) + c
        items = [Item(i, dim.name_of(i), c) for i, c in per_id.items()]  # type: ignore[misc]
        items.sort(key=lambda it: (-it.value, it.id))
    else:
        assert names is not None
        items = [Item(None, names[i] or UNKNOWN, int(counts[i])) for i in codes.tolist()]
        items.sort(key=lambda it: (-it.value, it.name))
    return items[: dim.top] if dim.top else items


def user_set(uv: UserValues, mask: np.ndarray | None = None) -> UserSet:
    """The portrait lists of the users selected by ``mask`` (all when None)."""
    counts: dict[str, np.ndarray] = {}
    # the selected rows once, as indices: one pass over the mask instead of one per column
    rows = None if mask is None else np.flatnonzero(mask)
    for dim in DIMENSIONS:
        col = dim.column
        if col.name not in counts:
            v = uv.values[col.name] if rows is None else uv.values[col.name][rows]
            counts[col.name] = np.bincount(v.astype(np.intp), minlength=column_size(col, uv))
    total = len(uv) if rows is None else len(rows)
    return user_set_of_counts(counts, total, uv.names)


def user_set_of_counts(
    counts: dict[str, np.ndarray], total: int, names: dict[str, list[str | None]]
) -> UserSet:
    """The portrait lists from the number of users per code of each column."""
    lists = {
        dim.list_name: ranked_items(dim, counts[dim.column.name], names.get(dim.column.name))
        for dim in DIMENSIONS
    }
    return UserSet(total=total, lists=lists)


def compute(source: PortraitSource, q: PortraitQuery) -> PortraitResult:
    """The portrait of ``q`` over ``source`` (exact distinct-user counts)."""
    # a source may hold the counts of a window already (the store: per-day aggregates)
    pre = source.counts(q.begin, q.end)
    if pre is not None:
        names = _names(source)
        return PortraitResult(
            query=q,
            new=user_set_of_counts(pre.new, pre.new_total, names),
            active=user_set_of_counts(pre.active, pre.active_total, names),
        )
    uv = user_values(source, q)
    return PortraitResult(query=q, new=user_set(uv, uv.is_new), active=user_set(uv))

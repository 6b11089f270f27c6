"""The portrait's dimensions, declared once (SPEC.md sections 3 and 4).

Two levels:

- a :class:`Column` is what the store keeps per user and the engine reads: a small integer code,
  0 when unknown. A *visit* column takes the value of the user's latest visit in the window that
  has it known; a *person* column takes the latest known value of all the user's records as of the
  end of the window.
- a :class:`Dimension` is one list of the portrait document. It reads one column, maps its codes
  to the list's ids (province and city both read the location code), and names them.

The WeChat document, the dashboard's schema and CSV, the engine's lists and bincount sizes, the
store's summary columns and the tests' oracle are all generated from :data:`DIMENSIONS`. Adding a
dimension is a row here plus the enrichment step that fills its column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from weanalysis.dims import catalog, regions

VISIT: Literal["visit"] = "visit"
PERSON: Literal["person"] = "person"


@dataclass(frozen=True)
class Column:
    """A per-user value kept by the store: codes 0 (unknown) .. size - 1."""

    name: str
    kind: Literal["visit", "person"]
    dtype: type[np.integer]
    # number of codes; None when the codes are numbered by the data (devices: the store keeps
    # the name of each code, and the source hands the names to the engine)
    size: int | None
    doc: str

    def __post_init__(self) -> None:
        if self.size is not None and self.size - 1 > np.iinfo(self.dtype).max:
            raise ValueError(f"column {self.name}: {self.size} codes do not fit {self.dtype}")


@dataclass(frozen=True)
class Dimension:
    """One list of the portrait document."""

    list_name: str  # the key in the WeChat document ("province", "genders", ...)
    label: str  # the dashboard's Chinese label
    column: Column
    # list id -> name; None when names come with the data (devices, which have no ids)
    name_of: Callable[[int], str] | None
    # column code -> list id (a location code -> its province); None: the code is the id
    ids: np.ndarray | None = None
    top: int | None = None  # only the first ``top`` items are listed
    singular: str | None = None  # the other spelling users type ("gender" for "genders")

    @property
    def has_ids(self) -> bool:
        return self.name_of is not None

    def list_id(self, codes: np.ndarray) -> np.ndarray:
        return codes if self.ids is None else self.ids[codes]


def _names(table: Mapping[int, str]) -> Callable[[int], str]:
    return table.__getitem__


LOC = Column(
    "loc", VISIT, np.int16, len(regions.LOCATIONS), "location: a (province, city) pair, numbered"
)
PLAT = Column("plat", VISIT, np.int8, len(catalog.PLATFORM_NAMES), "platform id")
DEV = Column("dev", VISIT, np.int32, None, "device name, numbered per app")
GENDER = Column("gender", PERSON, np.int8, len(catalog.GENDER_NAMES), "gender id")
AGE = Column("age", PERSON, np.int8, len(catalog.AGE_NAMES), "age bucket id")

COLUMNS: tuple[Column, ...] = (LOC, PLAT, DEV, GENDER, AGE)
VISIT_COLUMNS: tuple[Column, ...] = tuple(c for c in COLUMNS if c.kind == VISIT)
PERSON_COLUMNS: tuple[Column, ...] = tuple(c for c in COLUMNS if c.kind == PERSON)
COLUMN: dict[str, Column] = {c.name: c for c in COLUMNS}

TOP_DEVICES = 20

# In the WeChat document's order (SPEC.md section 5).
DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("province", "省份", LOC, regions.province_name, regions.LOC_PROVINCE),
    Dimension("city", "城市", LOC, regions.city_name, regions.LOC_CITY),
    Dimension("genders", "性别", GENDER, _names(catalog.GENDER_NAMES), singular="gender"),
    Dimension("platforms", "平台", PLAT, _names(catalog.PLATFORM_NAMES), singular="platform"),
    Dimension("devices", "机型", DEV, None, top=TOP_DEVICES, singular="device"),
    Dimension("ages", "年龄", AGE, _names(catalog.AGE_NAMES), singular="age"),
)
LISTS: tuple[str, ...] = tuple(d.list_name for d in DIMENSIONS)
BY_LIST: dict[str, Dimension] = {d.list_name: d for d in DIMENSIONS}
# every spelling a user may type for a list: "genders", "gender", ...
BY_SPELLING: dict[str, Dimension] = {
    **BY_LIST,
    **{d.singular: d for d in DIMENSIONS if d.singular},
}

# The store packs a person value with its day slot in one int32 (``slot << VALUE_BITS | value``).
# Part of the storage format: a person column with more codes needs a new format, not silently
# truncated ids.
VALUE_BITS = 4
for _c in PERSON_COLUMNS:
    if _c.size is None or _c.size > 1 << VALUE_BITS:
        raise ValueError(f"person column {_c.name} must have at most {1 << VALUE_BITS} codes")

"""The canonical portrait query and its result, independent of any API dialect."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from weanalysis.dims import LISTS
from weanalysis.errors import InputError
from weanalysis.store.days import day_date, day_number

# ASCII digits only (\d would take full-width ones), no surrounding blanks
DATE_RE = re.compile(r"^([0-9]{4})-?([0-9]{2})-?([0-9]{2})$")
MIN_YEAR = 1970


class DateFormatError(InputError):
    """A date that is missing, not yyyymmdd / yyyy-mm-dd, or not a real date."""


def parse_date(value: object) -> date:
    """``yyyymmdd`` or ``yyyy-mm-dd`` (as text) -> a date.

    >>> parse_date("20170611"), parse_date("2017-06-11")
    (datetime.date(2017, 6, 11), datetime.date(2017, 6, 11))
    """
    if not isinstance(value, str):
        raise DateFormatError("a date must be text: yyyymmdd or yyyy-mm-dd")
    m = DATE_RE.fullmatch(value)
    if not m or ("-" in value and value.count("-") != 2):
        raise DateFormatError(f"{value!r} is not yyyymmdd or yyyy-mm-dd")
    try:
        d = date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise DateFormatError(f"{value!r} is not a real date") from None
    if d.year < MIN_YEAR:
        raise DateFormatError(f"{value!r} is before {MIN_YEAR}")
    return d


@dataclass(frozen=True)
class PortraitQuery:
    appid: str
    begin: int  # day numbers in the app's time zone, inclusive
    end: int

    @classmethod
    def of(cls, appid: str, begin: date, end: date) -> PortraitQuery:
        return cls(appid, day_number(begin), day_number(end))

    @property
    def days(self) -> int:
        return self.end - self.begin + 1

    @property
    def ref_date(self) -> str:
        b, e = (
            f"{d.year:04d}{d.month:02d}{d.day:02d}" for d in map(day_date, (self.begin, self.end))
        )
        return b if self.begin == self.end else f"{b}-{e}"


@dataclass
class Item:
    id: int | None  # None for devices
    name: str
    value: int


@dataclass
class Crosstab:
    """Distinct users per pair of values of two lists (ids; device names for devices).

    ``cells`` holds ``(row, col, value)`` with value > 0, sorted by row then col.
    """

    rows: str  # list names ("genders")
    cols: str
    cells: list[tuple[int | str, int | str, int]]


@dataclass
class UserSet:
    """The portrait of one user set (new or active): one ranked list per dimension.

    ``lists`` holds every list of :data:`weanalysis.dims.LISTS`; ``us.genders`` reads one.
    ``total`` is None only when a segment's size was withheld (fewer than ``min_users`` users);
    ``withheld`` then counts, per list (and ``crosstab``, ``total``), what was left out.
    """

    total: int | None = 0
    lists: dict[str, list[Item]] = field(default_factory=dict)
    crosstab: Crosstab | None = None
    withheld: dict[str, int] | None = None

    def __getattr__(self, name: str) -> list[Item]:
        if name in LISTS:
            return self.lists.get(name, [])
        raise AttributeError(name)


@dataclass
class PortraitResult:
    query: PortraitQuery
    new: UserSet
    active: UserSet
    # the explorer's additions (weanalysis.portrait.explore): the segment's conditions as the user
    # wrote them canonically ("province=44"), the previous window, and the withholding threshold
    where: tuple[str, ...] = ()
    previous: PortraitResult | None = None
    min_users: int = 0

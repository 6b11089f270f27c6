"""The dimension catalogue of SPEC.md section 4: fixed ids and names.

Provinces and cities live in :mod:`weanalysis.dims.regions`; devices have no ids.
"""

from __future__ import annotations

from typing import Final

UNKNOWN = "未知"

GENDER_NAMES: dict[int, str] = {0: UNKNOWN, 1: "男", 2: "女"}

AGE_NAMES: dict[int, str] = {
    0: UNKNOWN,
    1: "17岁以下",
    2: "18-24岁",
    3: "25-29岁",
    4: "30-39岁",
    5: "40-49岁",
    6: "50岁以上",
}

PLATFORM_UNKNOWN, PLATFORM_IPHONE, PLATFORM_ANDROID, PLATFORM_OTHER = 0, 1, 2, 3
PLATFORM_NAMES: dict[int, str] = {
    PLATFORM_UNKNOWN: UNKNOWN,
    PLATFORM_IPHONE: "iPhone",
    PLATFORM_ANDROID: "android",
    PLATFORM_OTHER: "其他",
}

MIN_AGE, MAX_AGE = 0, 150


def age_bucket(age: int) -> int:
    """The age-bucket id of an age in years (already validated to 0..150).

    >>> [age_bucket(a) for a in (0, 17, 18, 24, 25, 29, 30, 39, 40, 49, 50, 150)]
    [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    """
    if age <= 17:
        return 1
    if age <= 24:
        return 2
    if age <= 29:
        return 3
    if age <= 39:
        return 4
    if age <= 49:
        return 5
    return 6


DEVTOOLS = "devtools"  # the WeChat developer tools' platform: such visits are filtered

# -- the platform field -----------------------------------------------------------------------

_PLATFORMS: Final[dict[str, int | str | None]] = {
    "ios": PLATFORM_IPHONE,
    "iphone": PLATFORM_IPHONE,
    "ipad": PLATFORM_IPHONE,
    "ipados": PLATFORM_IPHONE,
    "android": PLATFORM_ANDROID,
    DEVTOOLS: DEVTOOLS,
    "": None,
    "未知": None,
    "unknown": None,
}


def parse_platform(value: object) -> int | str | None:
    """The platform id of a visit's ``platform`` field (SPEC.md 2.1), case-insensitive, trimmed.

    ``ios``/``iPhone``/``ipad`` → 1; ``android`` → 2; ``devtools`` → the string ``"devtools"`` (the
    caller filters such visits); ``""``/``未知``/``unknown``/None → None; ids ``0``-``3`` as ints or
    digit strings → themselves (0 → None); any other string (``ohos``, ``windows``, ``mac``,
    ``其他``, ``linux``, …) → 3.

    Raises TypeError for a value that is neither a string nor an int, ValueError for an id
    outside 0-3.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"platform must be a string or an id 0-3, not {type(value).__name__}")
    if isinstance(value, str):
        s = value.strip().lower()
        if s in _PLATFORMS:
            return _PLATFORMS[s]
        if not (s.isascii() and s.isdigit()):
            return PLATFORM_OTHER
        value = int(s)
    if not 0 <= value <= PLATFORM_OTHER:
        raise ValueError(f"platform id must be 0-3, not {value}")
    return value or None

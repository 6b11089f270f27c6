"""The dimension catalogue of SPEC.md section 4: fixed ids and names.

Provinces and cities live in :mod:`weanalysis.enrich.regions`; devices have no ids.
"""

from __future__ import annotations

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

"""The portrait's dimensions: the declared table (:mod:`.table`), the fixed ids and names of
SPEC.md section 4 (:mod:`.catalog`) and the region tables (:mod:`.regions`).

This is the bottom layer: it imports nothing else of weanalysis, and every other layer may use it.
"""

from weanalysis.dims.catalog import (
    AGE_NAMES,
    DEVTOOLS,
    GENDER_NAMES,
    MAX_AGE,
    MIN_AGE,
    PLATFORM_ANDROID,
    PLATFORM_IPHONE,
    PLATFORM_NAMES,
    PLATFORM_OTHER,
    PLATFORM_UNKNOWN,
    UNKNOWN,
    age_bucket,
    parse_platform,
)
from weanalysis.dims.table import (
    BY_LIST,
    BY_SPELLING,
    COLUMN,
    COLUMNS,
    DIMENSIONS,
    LISTS,
    PERSON,
    PERSON_COLUMNS,
    TOP_DEVICES,
    VALUE_BITS,
    VISIT,
    VISIT_COLUMNS,
    Column,
    Dimension,
)

__all__ = [
    "AGE_NAMES",
    "BY_LIST",
    "BY_SPELLING",
    "COLUMN",
    "COLUMNS",
    "DEVTOOLS",
    "DIMENSIONS",
    "GENDER_NAMES",
    "LISTS",
    "MAX_AGE",
    "MIN_AGE",
    "PERSON",
    "PERSON_COLUMNS",
    "PLATFORM_ANDROID",
    "PLATFORM_IPHONE",
    "PLATFORM_NAMES",
    "PLATFORM_OTHER",
    "PLATFORM_UNKNOWN",
    "TOP_DEVICES",
    "UNKNOWN",
    "VALUE_BITS",
    "VISIT",
    "VISIT_COLUMNS",
    "Column",
    "Dimension",
    "age_bucket",
    "parse_platform",
]

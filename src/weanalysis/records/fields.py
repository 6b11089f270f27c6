"""Scalar parsers for every record field of SPEC.md section 2, with their named limits.

Each parser takes one value as it came from a file or a request (str, int, float, None, ...)
and returns its canonical form, ``None`` when the field is absent, or raises
:class:`FieldError` with a reason a user can read. The columnar drivers in
:mod:`weanalysis.records.columns` call these once per *distinct* value, so they may be slow-ish.
"""

from __future__ import annotations

import ipaddress
import math
import re
import time as _time
import unicodedata
from datetime import datetime

from weanalysis import dims
from weanalysis.errors import InputError

MAX_APPID_CHARS = 64
MAX_OPENID_CHARS = 128
MAX_EVENT_ID_CHARS = 128
MAX_BRAND_CHARS = 64
MAX_MODEL_CHARS = 128
MAX_USER_AGENT_CHARS = 2048
# Epoch numbers below this are seconds, above it milliseconds (1e11 s is the year 5138,
# 1e11 ms is 1973-03-03): the two readings cannot be confused for real visits.
EPOCH_MS_THRESHOLD = 100_000_000_000
# A visit more than a day in the future, or before 2000 (epoch 0 is a default, not a visit), is
# a clock or unit error.
MAX_FUTURE_MS = 86_400_000
MIN_TIME_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
TOO_EARLY = "before 2000 (a default value, or the wrong unit?)"

APPID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Control characters and the bidirectional controls that reorder what follows them on screen
# ("\u202eRTL" shows reversed): refused in every text field. The same set as an RE2 pattern, for
# the columnar (pyarrow) path.
UNSAFE_CHARS = "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
CONTROL_RE = re.compile(f"[{UNSAFE_CHARS}]")
UNSAFE_RE2 = r"[\x00-\x1f\x7f-\x{9f}\x{61c}\x{200e}\x{200f}\x{202a}-\x{202e}\x{2066}-\x{2069}]"
UNSAFE_REASON = "contains control or bidirectional-override characters"
# A visible character: not a space, separator, control, format (zero-width) or unassigned one.
VISIBLE_RE2 = r"[^\s\p{Z}\p{C}]"
INVISIBLE_REASON = "has no visible character (only spaces or zero-width characters)"
INVISIBLE_CATEGORIES = {"Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn"}
NUMBER_RE = re.compile(r"^[+-]?\d+(\.\d+)?$")

GENDER_WORDS = {
    "0": 0,
    "1": 1,
    "2": 2,
    "未知": 0,
    "男": 1,
    "女": 2,
    "unknown": 0,
    "male": 1,
    "female": 2,
}


class FieldError(InputError):
    """A field value that cannot be accepted; ``str(err)`` is the reason."""


def _type_name(value: object) -> str:
    return {bool: "boolean", dict: "object", list: "array"}.get(type(value), type(value).__name__)


def _is_blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _string(value: object, what: str = "a string") -> str:
    if not isinstance(value, str):
        raise FieldError(f"must be {what}, not {_type_name(value)}")
    return value.strip()


def parse_appid(value: object) -> str | None:
    if _is_blank(value):
        return None
    s = _string(value)
    if not APPID_RE.match(s):
        raise FieldError(f"must be 1-{MAX_APPID_CHARS} characters of A-Z a-z 0-9 _ -")
    return s


def has_visible(text: str) -> bool:
    return any(
        not c.isspace() and unicodedata.category(c) not in INVISIBLE_CATEGORIES for c in text
    )


def parse_openid(value: object) -> str | None:
    """The user id: 1-128 characters with a visible one, no control or bidi-override characters.

    Not stripped: ids are opaque.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise FieldError(f"must be a string, not {_type_name(value)}")
    if len(value) > MAX_OPENID_CHARS:
        raise FieldError(f"longer than {MAX_OPENID_CHARS} characters")
    if CONTROL_RE.search(value):
        raise FieldError(UNSAFE_REASON)
    if not has_visible(value):
        raise FieldError(INVISIBLE_REASON)
    return value


def parse_event_id(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise FieldError(f"must be a string, not {_type_name(value)}")
    if len(value) > MAX_EVENT_ID_CHARS:
        raise FieldError(f"longer than {MAX_EVENT_ID_CHARS} characters")
    if CONTROL_RE.search(value):
        raise FieldError(UNSAFE_REASON)
    return value


def epoch_to_ms(number: float) -> int:
    """Epoch seconds or milliseconds (told apart by magnitude) as integer milliseconds."""
    if abs(number) < EPOCH_MS_THRESHOLD:
        return round(number * 1000)
    return round(number)


def check_time_ms(ms: int, now_ms: int | None = None) -> int:
    if ms < MIN_TIME_MS:
        raise FieldError(TOO_EARLY)
    if now_ms is None:
        now_ms = int(_time.time() * 1000)
    if ms > now_ms + MAX_FUTURE_MS:
        raise FieldError("more than a day in the future")
    return ms


def parse_time(value: object, now_ms: int | None = None) -> int | None:
    """ISO 8601 with an offset, or epoch seconds/milliseconds, as UTC epoch milliseconds.

    >>> parse_time("2017-06-11T08:00:00+08:00"), parse_time(1497139200), parse_time("1497139200000")
    (1497139200000, 1497139200000, 1497139200000)
    """
    if _is_blank(value):
        return None
    if isinstance(value, bool):
        raise FieldError("must be ISO 8601 text or epoch seconds/milliseconds, not boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise FieldError("not a finite number")
        return check_time_ms(epoch_to_ms(value), now_ms)
    if not isinstance(value, str):
        raise FieldError(f"must be ISO 8601 text or an epoch number, not {_type_name(value)}")
    s = value.strip()
    if NUMBER_RE.match(s):
        return check_time_ms(epoch_to_ms(float(s) if "." in s else int(s)), now_ms)
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise FieldError(f"cannot parse {s[:40]!r} as ISO 8601 or epoch time") from None
    if dt.tzinfo is None:
        raise FieldError(f"{s[:40]!r} has no UTC offset (write e.g. +08:00 or Z)")
    return check_time_ms(round(dt.timestamp() * 1000), now_ms)


def parse_gender(value: object) -> int | None:
    """0/1/2, 未知/男/女 or unknown/male/female; 0 (unknown) is returned as None (absent)."""
    if _is_blank(value):
        return None
    if isinstance(value, bool):
        raise FieldError("must be 0/1/2, 未知/男/女 or unknown/male/female, not boolean")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    key = str(value).strip().lower() if isinstance(value, int | str) else None
    if key is None:
        raise FieldError(
            f"must be 0/1/2, 未知/男/女 or unknown/male/female, not {_type_name(value)}"
        )
    if key not in GENDER_WORDS:
        raise FieldError(
            f"unknown gender {str(value)[:20]!r} (use 0/1/2, 未知/男/女, unknown/male/female)"
        )
    return GENDER_WORDS[key] or None


def parse_age(value: object) -> int | None:
    """An integer age 0-150 (digit strings and integral floats accepted)."""
    if _is_blank(value):
        return None
    if isinstance(value, bool):
        raise FieldError("must be an integer 0-150, not boolean")
    if isinstance(value, float):
        if not value.is_integer():
            raise FieldError(f"must be an integer 0-150, not {value}")
        value = int(value)
    elif isinstance(value, str):
        s = value.strip()
        if not re.fullmatch(r"[+-]?\d{1,4}", s):
            raise FieldError(f"must be an integer 0-150, not {s[:20]!r}")
        value = int(s)
    elif not isinstance(value, int):
        raise FieldError(f"must be an integer 0-150, not {_type_name(value)}")
    if not dims.MIN_AGE <= value <= dims.MAX_AGE:
        raise FieldError(f"{value} is outside 0-150")
    return value


def parse_ip(value: object) -> str | None:
    """An IPv4 or IPv6 address in its canonical text form."""
    if _is_blank(value):
        return None
    s = _string(value)
    try:
        return str(ipaddress.ip_address(s))
    except ValueError:
        raise FieldError(f"{s[:50]!r} is not an IPv4 or IPv6 address") from None


def _bounded_text(limit: int):
    def parse(value: object) -> str | None:
        if _is_blank(value):
            return None
        s = _string(value)
        if len(s) > limit:
            raise FieldError(f"longer than {limit} characters")
        if CONTROL_RE.search(s):
            raise FieldError(UNSAFE_REASON)
        if not has_visible(s):
            return None  # only zero-width characters: as absent as a blank value
        return s

    return parse


parse_brand = _bounded_text(MAX_BRAND_CHARS)
parse_model = _bounded_text(MAX_MODEL_CHARS)
parse_user_agent = _bounded_text(MAX_USER_AGENT_CHARS)

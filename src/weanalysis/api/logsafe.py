"""Log fields a client controls (paths, hints quoting its input) made safe for a log line.

A path like ``/x%0aFORGED LINE%1b[31m`` must not start a fake log line or send a terminal escape:
control, format (bidi overrides, zero-width) and surrogate characters are written as escapes
(``\\x0a``, ``\\u202e``), and a backslash as ``\\\\``, so the escaped text is unambiguous.
"""

from __future__ import annotations

import re

MAX_LOGGED_CHARS = 512
UNSAFE_RE = re.compile(
    "[\\\\\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f"
    "\ufeff\ufff9-\ufffb\ud800-\udfff]"
)


def _escape(m: re.Match) -> str:
    c = m.group()
    if c == "\\":
        return "\\\\"
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def safe(text: object, limit: int = MAX_LOGGED_CHARS) -> str:
    """``text`` with every unsafe character escaped, cut to ``limit`` characters."""
    s = str(text)
    if len(s) > limit:
        s = s[:limit] + "…"
    return UNSAFE_RE.sub(_escape, s)

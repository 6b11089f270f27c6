"""WeChat's error vocabulary: errcodes, their exact texts, and the ``rid`` suffix.

Some SDKs match on these texts (EasyWeChat 6 retries only when a 42001 says
``access_token expired``), so they are WeChat's own words. Every WeChat-shaped answer of the
service (the WeChat routes, ``/collect``, the records API) takes its errcodes from here.
"""

from __future__ import annotations

import secrets

from weanalysis.errors import WeanalysisError

SYSTEM_ERROR = -1
INVALID_CREDENTIAL = 40001
INVALID_GRANT_TYPE = 40002
INVALID_APPID = 40013
INVALID_URL = 40066
INVALID_APPSECRET = 40125
ACCESS_TOKEN_MISSING = 41001
APPID_MISSING = 41002
APPSECRET_MISSING = 41004
ACCESS_TOKEN_EXPIRED = 42001
REQUIRE_GET = 43001
REQUIRE_POST = 43002
EMPTY_POST_DATA = 44002
RATE_LIMITED = 45011
DATA_FORMAT_ERROR = 47001
DATE_FORMAT_ERROR = 61500
DATE_RANGE_ERROR = 61501

MESSAGES = {
    SYSTEM_ERROR: "system error",
    INVALID_CREDENTIAL: "invalid credential, access_token is invalid or not latest",
    INVALID_GRANT_TYPE: "invalid grant_type",
    INVALID_APPID: "invalid appid",
    INVALID_URL: "invalid url",
    INVALID_APPSECRET: "invalid appsecret",
    ACCESS_TOKEN_MISSING: "access_token missing",
    APPID_MISSING: "appid missing",
    APPSECRET_MISSING: "appsecret missing",
    ACCESS_TOKEN_EXPIRED: "access_token expired",
    REQUIRE_GET: "require GET method",
    REQUIRE_POST: "require POST method",
    EMPTY_POST_DATA: "empty post data",
    RATE_LIMITED: "api minute-quota reach limit must slower retry next minute",
    DATA_FORMAT_ERROR: "data format error",
    DATE_FORMAT_ERROR: "date format error",
    DATE_RANGE_ERROR: "date range error",
}


class WeChatError(WeanalysisError):
    """An answer with a non-zero errcode.

    ``hint`` goes to the server log only; ``detail`` is also shown to the client after WeChat's
    text where the route family allows it (``/collect`` and the records API do; the WeChat
    routes keep WeChat's exact texts). ``status`` is the HTTP status (200 on WeChat routes).
    """

    def __init__(self, errcode: int, hint: str = "", status: int = 200, detail: str = ""):
        text = MESSAGES[errcode] + (f": {detail}" if detail else "")
        super().__init__(f"{errcode} {text}" + (f" ({hint})" if hint else ""))
        self.errcode = errcode
        self.hint = hint or detail
        self.status = status
        self.detail = detail


def rid() -> str:
    """A request id in WeChat's shape: three groups of eight hex digits."""
    return "-".join(secrets.token_hex(4) for _ in range(3))


def error_body(errcode: int, detail: str = "") -> dict:
    text = MESSAGES[errcode] + (f": {detail}" if detail else "")
    return {"errcode": errcode, "errmsg": f"{text} rid: {rid()}"}

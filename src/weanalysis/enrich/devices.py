"""Platform, device name and bot detection for visits (SPEC.md 2.1; section 4 platforms, devices).

Three entry points:

- :func:`device_name` turns ``wx.getSystemInfo()`` ``brand``/``model`` into the WeChat-style device
  name (``苹果iPhone 12 Pro``, ``华为Mate 40 Pro``, ``OPPO Find X6 Pro``);
- :func:`ua_info` reads platform, device and "is a bot" from an HTTP User-Agent (H5 visits);
- :func:`parse_platform` reads the ``platform`` field.

Naming rules of :func:`device_name`:

1. The marketing name comes from device_detector (the Matomo regexes), fed with a short synthetic
   User-Agent around the model code; on iOS the ``<iPhoneN,M>`` identifier is used when present.
2. The brand is the detector's brand (it knows which maker a code belongs to, whatever the phone
   reported), else the reported brand. Brands with a common Chinese name are shown in Chinese and
   joined without a space (苹果 华为 荣耀 小米 三星 一加 魅族 联想 中兴 努比亚 酷派 金立
   海信 索尼 摩托罗拉 诺基亚 谷歌 华硕 夏普 乐视); all others stay Latin, in their own
   spelling (``OPPO``, ``vivo``, ``realme``, ``POCO``), joined with a space.
3. The model never repeats the brand: a leading brand word is dropped (``OPPO`` + ``OPPO R9m`` →
   ``OPPO R9m``, not ``OPPO OPPO R9m``; Xiaomi's ``Mi 11 Pro`` → ``小米11 Pro``: 小米 *is* "Mi").
4. Honor: a model starting with ``Honor`` (device_detector files pre-2020 Honor phones under Huawei:
   ``Huawei / Honor V20``) moves to the brand Honor, so that every Honor phone is listed as
   ``荣耀…`` (``荣耀V20``, ``荣耀Magic 4``, ``荣耀70``) — Honor is a separate maker since 2020 and
   reports ``HONOR`` as its brand.
5. Sub-brands that the detector files under their parent keep the parent brand and their own name
   in the model: ``小米Redmi K40``, ``vivo iQOO 7``, ``小米Black Shark 5``. (The raw brand
   ``Redmi`` is Xiaomi too, so ``Redmi K30`` and ``M2012K11AC`` both land on ``小米Redmi …``.)
6. When the reported model is a longer version of the detected one (``Redmi Note 12 Turbo`` vs the
   detector's ``Redmi Note 12``), the reported, more specific name is kept.
7. Unknown codes fall back to the reported brand (normalised as above) and the reported model
   without its ``<…>`` suffix (``荣耀ABC-123``, ``Foo X1``); a brand alone gives the brand
   (``OPPO``); nothing usable gives ``None``. ``devtools``/``unknown`` are not brands.
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass
from typing import Any, Final

import yaml

from weanalysis.dims.catalog import (
    DEVTOOLS,
    PLATFORM_ANDROID,
    PLATFORM_IPHONE,
    PLATFORM_OTHER,
    parse_platform,
)

__all__ = ["DEVTOOLS", "UAInfo", "device_name", "parse_platform", "ua_info"]


# -- brands -----------------------------------------------------------------------------------

# canonical brand -> (display name, is Chinese). Chinese names join the model without a space.
_BRANDS: Final[dict[str, tuple[str, bool]]] = {
    "apple": ("苹果", True),
    "huawei": ("华为", True),
    "honor": ("荣耀", True),
    "xiaomi": ("小米", True),
    "samsung": ("三星", True),
    "oneplus": ("一加", True),
    "meizu": ("魅族", True),
    "lenovo": ("联想", True),
    "zte": ("中兴", True),
    "nubia": ("努比亚", True),
    "coolpad": ("酷派", True),
    "gionee": ("金立", True),
    "hisense": ("海信", True),
    "sony": ("索尼", True),
    "motorola": ("摩托罗拉", True),
    "nokia": ("诺基亚", True),
    "google": ("谷歌", True),
    "asus": ("华硕", True),
    "sharp": ("夏普", True),
    "leeco": ("乐视", True),
    "oppo": ("OPPO", False),
    "vivo": ("vivo", False),
    "realme": ("realme", False),
    "poco": ("POCO", False),
    "htc": ("HTC", False),
    "lg": ("LG", False),
    "tcl": ("TCL", False),
}

# Reported / detected spellings -> canonical brand (keys: lower case without " ", "-", "_").
_BRAND_ALIASES: Final[dict[str, str]] = {
    **{k: k for k in _BRANDS},
    "iphone": "apple",  # wx reports brand "iPhone" / "iPad" on iOS
    "ipad": "apple",
    "ipod": "apple",
    "mi": "xiaomi",
    "redmi": "xiaomi",  # Redmi is Xiaomi's sub-brand: rule 5
    "iqoo": "vivo",  # iQOO is vivo's sub-brand: rule 5
    "letv": "leeco",
}

# Words that only repeat the brand at the start of a model (rule 3). Sub-brands (Redmi, iQOO)
# and Apple's families (iPhone, iPad) are model names, not brand words.
_BRAND_WORDS: Final[dict[str, frozenset[str]]] = {
    key: frozenset({key, name.lower()} | ({"mi"} if key == "xiaomi" else set()))
    for key, (name, _) in _BRANDS.items()
}

# Values that stand for "no brand" / "no model" in wx.getSystemInfo() and UA parsers.
_NOTHING: Final = frozenset(
    {"", "unknown", "devtools", "null", "none", "undefined", "generic", "genericandroid", "other"}
)

_IOS_ID = re.compile(r"<\s*((?:iPhone|iPad|iPod|Watch)\d+,\d+)\s*>\s*$", re.IGNORECASE)
_SUFFIX = re.compile(r"<[^<>]*>\s*$")
_APPLE_MODEL = re.compile(r"^(?:iPhone|iPad|iPod)", re.IGNORECASE)
# Bare Apple family names: what device_detector answers when it knows no more.
_GENERIC_APPLE: Final[dict[str, str]] = {"iphone": "iPhone", "ipad": "iPad", "ipod": "iPod"}
# A model longer than this is not a model code; skip the detector (its cost grows with length).
_MAX_MODEL_LEN: Final = 64


def _canonical(brand: str | None) -> str | None:
    """Canonical brand key, or None for no brand. Unknown brands keep their own spelling."""
    if brand is None:
        return None
    b = " ".join(brand.split())
    key = re.sub(r"[\s_-]+", "", b).lower()
    if key in _NOTHING:
        return None
    return _BRAND_ALIASES.get(key, b)


def _display(brand: str) -> tuple[str, bool]:
    """(display name, is Chinese) of a canonical brand."""
    return _BRANDS.get(brand, (brand, False))


def _strip_brand(brand: str, model: str) -> str:
    """The model without leading words that only repeat the brand (rule 3)."""
    words = _BRAND_WORDS.get(brand) or {brand.lower()}
    if model.lower() in words:
        return ""
    changed = True
    while changed:
        changed = False
        for w in words:
            rest = model[len(w) :]
            # Latin brand words must end at a word boundary ("MIX 2S" is no "Mi"); Chinese need not.
            if model.lower().startswith(w) and rest and (not w.isascii() or rest[0] in " _-"):
                model = rest.lstrip(" _-")
                changed = True
    return model


def _join(brand: str | None, model: str | None) -> str | None:
    """Apply rules 2-4 and join brand and model; None when neither is known."""
    model = " ".join(model.split()) if model else ""
    if brand is None:
        return model or None
    model = _strip_brand(brand, model)
    if brand == "huawei" and re.match(r"honor(?:[\s_-]|$)", model, re.IGNORECASE):
        brand = "honor"
        model = _strip_brand(brand, model)
    name, chinese = _display(brand)
    if not model:
        return name
    return f"{name}{model}" if chinese else f"{name} {model}"


# -- device_detector ------------------------------------------------------------------------


class _PyYAML:
    """Stands in for the ``yaml_rs`` module inside device_detector: PyYAML's C safe loader.

    device_detector reads its regex files with yaml_rs (a young Rust parser that releases the GIL
    while parsing); the test suite saw it segfault in a worker thread, rarely, and twice. PyYAML
    gives the same data for every file device_detector ships (``tests/test_devices.py`` checks
    that), in ~0.8 s instead of ~0.1 s, once per process and only for the files a lookup needs.
    """

    @staticmethod
    def loads(text: str | bytes) -> Any:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@functools.cache
def _device_detector() -> Any:
    """The device_detector package, imported once per process on first use, reading YAML with
    PyYAML (:class:`_PyYAML`).

    Lazy because import plus first parse cost ~0.5 s and ~60 MB, which processes that never see a
    new model (queries, the dashboard) should not pay. Neither the import nor parsing emits
    warnings (checked under ``-W error``), so none are suppressed here.
    """
    from device_detector import yaml_loader

    yaml_loader.yaml_rs = _PyYAML  # before any regex file is read
    import device_detector

    return device_detector


def _detector_class() -> Any:
    """device_detector's DeviceDetector class."""
    return _device_detector().DeviceDetector


def _bot_parsers() -> tuple[Any, Any]:
    """device_detector's Bot (bots.yml) and Library (HTTP client) parsers."""
    dd = _device_detector()
    return dd.Bot, dd.Library


_ANDROID_UA: Final = (
    "Mozilla/5.0 (Linux; Android 12; {} Build/X) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Mobile Safari/537.36"
)
# The device goes where iOS UAs name it ("iPhone", "iPad"); the template names no device itself,
# or an unknown "iPod9,1" would come back as the template's "iPhone".
_IOS_UA: Final = (
    "Mozilla/5.0 ({}; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148"
)


# device_detector loads its regex files lazily into shared class state; misses are rare (results
# are cached per model), so they are simply serialised.
DETECTOR_LOCK = threading.RLock()


def _detect(model: str) -> tuple[str, str]:
    """(brand, model) that device_detector names for a model code; ("", "") when unknown.

    The Matomo regexes are written against real User-Agents, so the code is wrapped in one; the
    "Build/" tail matters (``Xiaomi 15`` is only recognised with it). check_cache=False: the
    library's own cache hands back an instance that ``__init__`` then resets, so it saves nothing;
    :func:`device_name` caches above it.
    """
    code = re.sub(r"[();]", " ", model).strip()
    template = _IOS_UA if _APPLE_MODEL.match(code) else _ANDROID_UA
    with DETECTOR_LOCK:
        d = _detector_class()(template.format(code), check_cache=False).parse()
        return d.device_brand() or "", d.device_model() or ""


def _norm(s: str) -> str:
    return " ".join(s.lower().split())


@functools.lru_cache(maxsize=65536)
def device_name(brand: str | None, model: str | None) -> str | None:
    """The WeChat-style device name of ``wx.getSystemInfo()`` ``brand`` and ``model``.

    >>> device_name("iPhone", "iPhone 12 Pro<iPhone13,3>")
    '苹果iPhone 12 Pro'
    >>> device_name("HONOR", "PCT-AL10")
    '荣耀V20'
    >>> device_name("OPPO", "OPPO R9m")
    'OPPO R9m'

    See the module docstring for the naming rules. Never returns an empty string: ``None`` when
    neither a brand nor a model is usable. Cached per (brand, model): a cache miss runs
    device_detector (a few ms, up to ~0.5 s the first time a maker's regexes are compiled).
    """
    raw_brand = _canonical(brand)
    raw = " ".join(model.split()) if model else ""
    ios_id = _IOS_ID.search(raw)
    label = _SUFFIX.sub("", raw).strip()  # "iPhone 12 Pro<iPhone13,3>" -> "iPhone 12 Pro"
    if label.lower() in _NOTHING:
        label = ""
    code = ios_id.group(1) if ios_id else label
    if not code:
        # wx reports the brand "iPhone" / "iPad" on iOS: a bare one still names the family.
        bare = (brand or "").strip().lower()
        return _join(raw_brand, _GENERIC_APPLE.get(bare) if raw_brand == "apple" else None)
    if raw_brand is None and _APPLE_MODEL.match(code):
        raw_brand = "apple"
    if len(code) > _MAX_MODEL_LEN:
        return _join(raw_brand, code)

    det_brand, det_model = _detect(code)
    brand_key = _canonical(det_brand) if det_brand else raw_brand
    if det_model.lower() in _GENERIC_APPLE:
        # A bare "iPhone" for an identifier the regexes do not know yet (a new iPhone), or for a
        # label they cannot read: WeChat's own label or the identifier say more.
        if label and label.lower() not in _GENERIC_APPLE:
            det_model = label
        elif ios_id:
            det_model = ios_id.group(1)
    if not det_model:
        return _join(raw_brand or brand_key, label or code)
    if not ios_id and brand_key:
        # Rule 6: the reported name is more specific than the detector's ("… Turbo", "… Pro+").
        reported = _strip_brand(brand_key, label)
        if _norm(reported).startswith(_norm(_strip_brand(brand_key, det_model)) + " "):
            det_model = reported
    return _join(brand_key, det_model)


# -- user agents ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UAInfo:
    """What a User-Agent says about a visit.

    ``platform``: a :mod:`weanalysis.dims` platform id (1 iPhone, 2 android, 3 其他) or None when
    unknown; ``device``: the WeChat-style device name or None; ``is_bot``: not a person.
    """

    platform: int | None
    device: str | None
    is_bot: bool


_NOT_A_UA: Final = UAInfo(None, None, False)
_BOT_INFO: Final = UAInfo(None, None, True)

# Headless / automation browsers: they look like real browsers to the Matomo and ua-parser lists.
_HEADLESS = re.compile(
    r"HeadlessChrome|PhantomJS|SlimerJS|Puppeteer|Playwright|Selenium|Lighthouse|Cypress|jsdom",
    re.IGNORECASE,
)
_HARMONY = re.compile(r"OpenHarmony|HarmonyOS|ArkWeb", re.IGNORECASE)
# The parenthesised system part after "Android x.y", split on ";".
_ANDROID_PART = re.compile(r"Android[\s/]?[\d.]*;([^()]*)\)")
# Segments of that part that are not the model: "U", locales ("zh-cn"), "wv", "HarmonyOS",
# HMSCore, Chrome's reduced UA placeholder "K".
_NOT_MODEL = re.compile(
    r"^(?:|U|K|wv|Mobile|Linux|HarmonyOS.*|HMSCore.*|[a-z]{2}(?:[-_][a-z]{2,4})?)$", re.IGNORECASE
)
_UNKNOWN_OS = frozenset({"Other", ""})


def _android_model(ua: str) -> str | None:
    """The model token of an Android UA ("PCT-AL10", "OPPO R9s", "Redmi K30 Pro"), if any."""
    m = _ANDROID_PART.search(ua)
    if not m:
        return None
    for seg in m.group(1).split(";"):
        seg = re.sub(r"\s*Build/.*$", "", seg.strip())
        if not _NOT_MODEL.match(seg) and not seg.startswith("Build/"):
            return seg
    return None


def _is_bot(ua: str, ua_device_family: str | None) -> bool:
    """Crawlers, monitors, headless browsers and generic HTTP clients.

    Generic HTTP clients (curl, python-requests, Go-http-client, okhttp, …) count as bots: no
    person browses an H5 page with them. They are recognised by device_detector's library list,
    but only when the UA does not present itself as a browser ("Mozilla/…"), because that list
    also holds tokens that real in-app browsers append.
    """
    if ua_device_family == "Spider" or _HEADLESS.search(ua):
        return True
    bot, library = _bot_parsers()
    with DETECTOR_LOCK:
        if bot(ua, None).parse().ua_data:
            return True
        return not ua.startswith("Mozilla/") and bool(library(ua, None).parse().ua_data)


@functools.lru_cache(maxsize=65536)
def ua_info(user_agent: str) -> UAInfo:
    """Platform, device and bot flag of an HTTP User-Agent (H5 visits).

    - platform: iOS (iPhone, iPad) → 1, Android → 2, OpenHarmony, Windows, macOS, Linux and other
      known systems → 3, unknown → None. HarmonyOS 2-4 UAs that still say "Android" are Android,
      as WeChat's own ``platform`` reports them; HarmonyOS NEXT (OpenHarmony) is 3.
    - device: the :func:`device_name` of the model in an Android UA; "苹果iPhone" / "苹果iPad" for
      iOS (iOS UAs carry no model); None for desktops, OpenHarmony (no model either) and unknowns.
    - is_bot: search-engine spiders, crawlers, monitors, headless browsers, HTTP libraries. Bots get
      no platform or device: they are filtered anyway.

    Cached per UA string. A miss costs ua-parser plus device_detector's bot lists (well under a
    millisecond); the device name comes from :func:`device_name`'s own cache.
    """
    ua = user_agent.strip()
    if not ua:
        return _NOT_A_UA
    import ua_parser  # lazy: the parser's regexes load on first use

    r = ua_parser.parse(ua)
    family = r.device.family if r.device else None
    if _is_bot(ua, family):
        return _BOT_INFO
    os_family = r.os.family if r.os else ""
    if os_family == "iOS":
        # iOS UAs name the family only ("iPhone", "iPad", "iPod"), never the model.
        fam = family.split()[0] if family else ""
        fam = fam if fam.lower() in _GENERIC_APPLE else "iPhone"
        return UAInfo(PLATFORM_IPHONE, device_name("Apple", fam), False)
    if os_family == "Android":
        model = _android_model(ua)
        # ua-parser's brand ("Oppo", "XiaoMi", "Generic_Android") only matters for unknown codes.
        brand = r.device.brand if r.device else None
        return UAInfo(PLATFORM_ANDROID, device_name(brand, model) if model else None, False)
    if _HARMONY.search(ua) or os_family not in _UNKNOWN_OS:
        return UAInfo(PLATFORM_OTHER, None, False)
    return _NOT_A_UA

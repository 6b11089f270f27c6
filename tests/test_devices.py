"""Device names, User-Agent facts and platform spellings (weanalysis.enrich.devices).

Model codes and User-Agents are real ones (refdata.md section 3.3 plus common Chinese phones).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weanalysis.enrich import devices
from weanalysis.enrich.devices import UAInfo, device_name, parse_platform, ua_info

# -- wx.getSystemInfo() brand / model -> device name ------------------------------------------

SYSINFO: list[tuple[str | None, str | None, str | None]] = [
    # the 27 model strings of refdata.md 3.3
    ("iPhone", "iPhone 12 Pro<iPhone13,3>", "苹果iPhone 12 Pro"),
    ("iPhone", "iPhone X<iPhone10,3>", "苹果iPhone X"),
    ("Apple", "iPhone15,2", "苹果iPhone 14 Pro"),
    ("iPhone", "iPhone16,2", "苹果iPhone 15 Pro Max"),
    ("iPhone", "iPhone17,1", "苹果iPhone 16 Pro"),
    ("iPhone", "iPhone17,5", "苹果iPhone 16e"),
    ("iPhone", "iPhone18,3", "苹果iPhone 17"),
    ("iPhone", "iPhone18,4", "苹果iPhone Air"),
    ("OPPO", "OPPO R9m", "OPPO R9m"),
    ("HONOR", "PCT-AL10", "荣耀V20"),
    ("Redmi", "Redmi K30", "小米Redmi K30"),
    ("Xiaomi", "M2012K11AC", "小米Redmi K40"),
    ("vivo", "V2049A", "vivo iQOO 7"),
    ("samsung", "SM-G9910", "三星Galaxy S21 5G"),
    ("HUAWEI", "NOH-AN00", "华为Mate 40 Pro"),
    ("HUAWEI", "ALN-AL00", "华为Mate 60 Pro"),
    ("HUAWEI", "PLR-AL00", "华为Mate 70 Pro"),
    ("HUAWEI", "HBN-AL00", "华为Pura 70 Pro"),
    ("Xiaomi", "24129PN74C", "小米15"),
    ("Xiaomi", "2410DPN6CC", "小米15 Pro"),
    ("vivo", "V2405A", "vivo X200 Pro"),
    ("OPPO", "PKB110", "OPPO Find X8"),
    ("OnePlus", "PJZ110", "一加13"),
    ("realme", "RMX3706", "realme GT Neo 5"),
    ("samsung", "SM-S9280", "三星Galaxy S24 Ultra"),
    ("HONOR", "LGE-AN00", "荣耀Magic 4"),
    ("HONOR", "FNE-AN00", "荣耀70"),
    # iOS: identifier, label only, devtools, iPad, unknown identifiers
    ("devtools", "iPhone 6", "苹果iPhone 6"),
    ("iPhone", "iPhone 6<iPhone7,2>", "苹果iPhone 6"),
    ("iPhone", "iPhone X", "苹果iPhone X"),
    ("iPhone", "iPhone 15 Pro Max", "苹果iPhone 15 Pro Max"),
    ("iPhone", "iPhone 15 Pro Max<iPhone16,2>", "苹果iPhone 15 Pro Max"),
    ("iPhone", "iPhone SE (2nd generation)<iPhone12,8>", "苹果iPhone SE (2020)"),
    ("iPhone", "iPad Pro 11-inch<iPad13,4>", '苹果iPad Pro 3 11" WiFi'),
    ("iPad", "iPad", "苹果iPad"),
    (
        "iPhone",
        "iPhone 18 Pro<iPhone19,1>",
        "苹果iPhone 18 Pro",
    ),  # identifier newer than the regexes
    ("iPhone", "unknown<iPhone19,1>", "苹果iPhone19,1"),
    ("Apple", "iPod touch", "苹果iPod touch"),
    (None, "iPod9,1", "苹果iPod9,1"),
    # Huawei / Honor (pre-2020 Honor codes are filed under Huawei by device_detector)
    ("HUAWEI", "YAL-AL00", "荣耀20"),
    ("HUAWEI", "HONOR V20", "荣耀V20"),
    ("HONOR", "HONOR 70", "荣耀70"),
    ("HONOR", "BVL-AN00", "荣耀Magic 6"),
    ("HONOR", "ANY-AN00", "荣耀X30"),
    ("HUAWEI", "NOP-AN00", "华为Mate 40 Pro+"),
    ("HUAWEI", "ELS-AN00", "华为P40 Pro"),
    ("HUAWEI", "VOG-AL00", "华为P30 Pro"),
    ("HUAWEI", "HUAWEI P30 Pro", "华为P30 Pro"),
    # Xiaomi / Redmi (sub-brand kept in the model) / POCO
    ("Redmi", "Redmi K40", "小米Redmi K40"),
    ("Xiaomi", "Redmi K40", "小米Redmi K40"),
    ("Redmi", "22041211AC", "小米Redmi K50"),
    ("Redmi", "Redmi Note 12 Turbo", "小米Redmi Note 12 Turbo"),  # more specific than the regex
    ("Xiaomi", "Xiaomi 15", "小米15"),
    ("Xiaomi", "2211133C", "小米13"),
    ("Xiaomi", "MI 8", "小米8"),
    ("Xiaomi", "M2102K1AC", "小米11 Pro"),
    ("Xiaomi", "MIX 2S", "小米Mix 2S"),
    ("POCO", "POCO F5", "POCO F5"),
    # vivo / iQOO, OPPO, OnePlus, realme, Samsung, others
    ("vivo", "vivo X200 Pro", "vivo X200 Pro"),
    ("vivo", "V2217A", "vivo iQOO 10"),
    ("vivo", "vivo X9", "vivo X9"),
    ("OPPO", "PGEM10", "OPPO Find X6 Pro"),
    ("OPPO", "PDEM30", "OPPO Find X2 Pro"),
    ("OPPO", "OPPO A57", "OPPO A57"),
    ("OnePlus", "PHK110", "一加Ace 2"),
    ("OnePlus", "LE2120", "一加9 Pro"),
    ("realme", "RMX3300", "realme GT 2 Pro"),
    ("samsung", "SM-F9460", "三星Galaxy Z Fold 5"),
    ("samsung", "SM-S9180", "三星Galaxy S23 Ultra"),
    ("Meizu", "MEIZU 18", "魅族18"),
    ("ZTE", "A2023P", "中兴Axon 40 Ultra"),
    ("nubia", "NX729J", "努比亚Red Magic 8 Pro"),
    ("Lenovo", "L79031", "联想Legion Pro"),
    ("Google", "Pixel 8", "谷歌Pixel 8"),
    ("TCL", "TCL 20 Pro 5G", "TCL 20 Pro 5G"),
    # unknown codes: the reported brand (normalised) and model
    ("HONOR", "ABC-123", "荣耀ABC-123"),
    ("meizu", "M2181", "魅族M2181"),
    ("Foo", "X1", "Foo X1"),
    (None, "ABC-123", "ABC-123"),
    ("  OPPO ", "  ABC-123  ", "OPPO ABC-123"),
    ("OPPO", "OPPO", "OPPO"),
    ("Xiaomi", "Mi", "小米"),
    # brand only / nothing
    ("OPPO", "", "OPPO"),
    ("OPPO", None, "OPPO"),
    ("iPhone", "", "苹果iPhone"),
    ("iPad", None, "苹果iPad"),
    ("devtools", "", None),
    ("unknown", "unknown", None),
    ("", "", None),
    (None, None, None),
]


@pytest.mark.parametrize(("brand", "model", "expected"), SYSINFO)
def test_device_name(brand: str | None, model: str | None, expected: str | None) -> None:
    assert device_name(brand, model) == expected


def _fail(model: str) -> tuple[str, str]:
    raise AssertionError(f"device_detector called for {model!r}")


def test_long_model_is_kept_without_the_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    device_name.cache_clear()
    monkeypatch.setattr(devices, "_detect", _fail)
    assert device_name("OPPO", "X" * 65) == "OPPO " + "X" * 65


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=12)), st.one_of(st.none(), st.text(max_size=24)))
def test_device_name_is_never_empty(brand: str | None, model: str | None) -> None:
    name = device_name(brand, model)
    assert name is None or (name and name == name.strip())


# -- caching ----------------------------------------------------------------------------------


def _counting_detect(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = devices._detect

    def detect(model: str) -> tuple[str, str]:
        calls.append(model)
        return real(model)

    monkeypatch.setattr(devices, "_detect", detect)
    return calls


def test_device_name_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    device_name.cache_clear()
    calls = _counting_detect(monkeypatch)
    assert device_name("HONOR", "PCT-AL10") == "荣耀V20"
    assert device_name("HONOR", "PCT-AL10") == "荣耀V20"
    assert calls == ["PCT-AL10"]
    info = device_name.cache_info()
    assert (info.hits, info.misses) == (1, 1)
    assert info.maxsize is not None and info.maxsize >= 10_000


def test_ua_info_is_cached_and_reuses_device_names(monkeypatch: pytest.MonkeyPatch) -> None:
    ua_info.cache_clear()
    device_name.cache_clear()
    calls = _counting_detect(monkeypatch)
    first = ua_info(UA_HONOR_V20)
    assert ua_info(UA_HONOR_V20) is first
    assert (ua_info.cache_info().hits, ua_info.cache_info().misses) == (1, 1)
    # Another user on the same phone: a new UA string (MMWEBID differs), same cached model.
    other = UA_HONOR_V20.replace("MMWEBID/6213", "MMWEBID/9001")
    assert ua_info(other) == first
    assert calls == ["PCT-AL10"]
    assert ua_info.cache_info().misses == 2


def test_device_detector_is_imported_lazily() -> None:
    code = (
        "import sys, weanalysis.enrich.devices as d\n"
        "assert 'device_detector' not in sys.modules\n"
        "assert d.device_name('OPPO', 'PGEM10') == 'OPPO Find X6 Pro'\n"
        "assert 'device_detector' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)


def test_device_detector_reads_its_regexes_with_pyyaml_and_gets_the_same_data() -> None:
    """The regex files read through PyYAML (which device_detector is given in place of yaml_rs,
    see enrich/devices.py) hold exactly what yaml_rs reads from them, file by file."""
    import device_detector
    import yaml_rs

    from weanalysis.enrich import devices as d

    dd = d._device_detector()
    assert dd.yaml_loader.yaml_rs is d._PyYAML
    root = Path(device_detector.__file__).parent / "regexes"
    files = sorted(root.rglob("*.yml"))
    assert len(files) > 50
    for f in files:
        text = f.read_text("utf-8")
        assert d._PyYAML.loads(text) == yaml_rs.loads(text), f.name


# -- User-Agents --------------------------------------------------------------------------------

UA_HONOR_V20 = (
    "Mozilla/5.0 (Linux; Android 10; PCT-AL10 Build/HUAWEIPCT-AL10; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/78.0.3904.62 XWEB/2693 MMWEBSDK/201201 Mobile "
    "Safari/537.36 MMWEBID/6213 MicroMessenger/8.0.2.1860(0x2800023B) Process/toolsmp "
    "WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64"
)

UAS: list[tuple[str, str, int | None, str | None]] = [
    # the 14 WeChat UAs of refdata.md 3.3
    ("UA1 Honor V20", UA_HONOR_V20, 2, "荣耀V20"),
    (
        "UA2 iPhone",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 14_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) Mobile/15E148 MicroMessenger/8.0.2(0x18000239) NetType/WIFI Language/zh_CN",
        1,
        "苹果iPhone",
    ),
    (
        "UA3 OPPO R9s",
        "Mozilla/5.0 (Linux; Android 6.0.1; OPPO R9s Build/MMB29M; wv) AppleWebKit/537.36 (KHTML, "
        "like Gecko) Version/4.0 Chrome/57.0.2987.132 MQQBrowser/6.2 TBS/044304 Mobile "
        "Safari/537.36 MicroMessenger/6.7.3.1360(0x26070333) NetType/WIFI Language/zh_CN "
        "Process/tools",
        2,
        "OPPO R9s",
    ),
    (
        "UA4 Redmi K30 Pro",
        "Mozilla/5.0 (Linux; Android 11; Redmi K30 Pro Build/RKQ1.200826.002; wv) "
        "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/86.0.4240.99 XWEB/3164 "
        "MMWEBSDK/20211001 Mobile Safari/537.36 MMWEBID/2585 "
        "MicroMessenger/8.0.15.2020(0x28000F39) Process/toolsmp WeChat/arm64 Weixin "
        "NetType/WIFI Language/zh_CN ABI/arm64",
        2,
        "小米Redmi K30 Pro",
    ),
    (
        "UA5 M2012K11AC",
        "Mozilla/5.0 (Linux; Android 12; M2012K11AC Build/SKQ1.211006.001; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/98.0.4758.102 MQQBrowser/6.2 TBS/046317 Mobile "
        "Safari/537.36 MMWEBID/9871 MicroMessenger/8.0.30.2260(0x28001E3B) WeChat/arm64 Weixin "
        "NetType/5G Language/zh_CN ABI/arm64",
        2,
        "小米Redmi K40",
    ),
    (
        "UA6 V2049A",
        "Mozilla/5.0 (Linux; Android 11; V2049A Build/RP1A.200720.012; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/86.0.4240.99 XWEB/3179 MMWEBSDK/20211001 Mobile "
        "Safari/537.36 MMWEBID/1552 MicroMessenger/8.0.16.2040(0x28001056) Process/toolsmp "
        "WeChat/arm64 Weixin NetType/4G Language/zh_CN ABI/arm64",
        2,
        "vivo iQOO 7",
    ),
    (
        "UA7 SM-G9910",
        "Mozilla/5.0 (Linux; Android 12; SM-G9910 Build/SP1A.210812.016; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/101.0.4951.74 Mobile Safari/537.36 MMWEBID/7011 "
        "MicroMessenger/8.0.28.2240(0x28001C35) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN "
        "ABI/arm64",
        2,
        "三星Galaxy S21 5G",
    ),
    (
        "UA8 PGEM10",
        "Mozilla/5.0 (Linux; Android 13; PGEM10 Build/TP1A.220905.001; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/111.0.5563.116 Mobile Safari/537.36 XWEB/5197 "
        "MMWEBSDK/20230701 MMWEBID/3370 MicroMessenger/8.0.40.2420(0x28002837) WeChat/arm64 "
        "Weixin NetType/WIFI Language/zh_CN ABI/arm64",
        2,
        "OPPO Find X6 Pro",
    ),
    (
        "UA9 NOH-AN00 (HarmonyOS 2-4, Android compatible)",
        "Mozilla/5.0 (Linux; Android 12; NOH-AN00 Build/HUAWEINOH-AN00; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/99.0.4844.88 Mobile Safari/537.36 XWEB/5061 "
        "MMWEBSDK/20230303 MMWEBID/8808 MicroMessenger/8.0.34.2340(0x2800225A) WeChat/arm64 "
        "Weixin NetType/WIFI Language/zh_CN ABI/arm64",
        2,
        "华为Mate 40 Pro",
    ),
    (
        "UA10 OpenHarmony",
        "Mozilla/5.0 (Phone; OpenHarmony 5.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/114.0.0.0 Safari/537.36 ArkWeb/4.1.6.1 Mobile MicroMessenger/8.0.1.47(0x20010130) "
        "NetType/WIFI Language/zh_CN",
        3,
        None,
    ),
    (
        "UA11 iPad",
        "Mozilla/5.0 (iPad; CPU OS 16_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Mobile/15E148 MicroMessenger/8.0.30(0x18001e31) NetType/WIFI Language/zh_CN",
        1,
        "苹果iPad",
    ),
    (
        "UA12 Windows WeChat",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/81.0.4044.138 Safari/537.36 NetType/WIFI MicroMessenger/7.0.20.1781(0x6700143B) "
        "WindowsWechat(0x6307001e)",
        3,
        None,
    ),
    (
        "UA13 Mac WeChat",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "MicroMessenger/6.8.0(0x16080000) MacWechat/3.8.1(0x13080110) XWEB/30817 Flue",
        3,
        None,
    ),
    (
        "UA14 YAL-AL00 mini program",
        "Mozilla/5.0 (Linux; Android 10; YAL-AL00 Build/HUAWEIYAL-AL00; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/78.0.3904.62 XWEB/2691 MMWEBSDK/200901 Mobile "
        "Safari/537.36 MMWEBID/4363 MicroMessenger/7.0.19.1760(0x2700133F) Process/appbrand0 "
        "WeChat/arm64 NetType/WIFI Language/zh_CN ABI/arm64 miniProgram/wx1234567890abcdef",
        2,
        "荣耀20",
    ),
    # more browsers and systems
    (
        "Xiaomi 15 WeChat",
        "Mozilla/5.0 (Linux; Android 14; 24129PN74C Build/UKQ1.240624.001; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/130.0.6723.103 Mobile Safari/537.36 XWEB/1300289 "
        "MMWEBSDK/20241103 MMWEBID/7592 MicroMessenger/8.0.55.2780(0x28003737) WeChat/arm64 "
        "Weixin NetType/WIFI Language/zh_CN ABI/arm64",
        2,
        "小米15",
    ),
    (
        "MIUI browser, locale segment",
        "Mozilla/5.0 (Linux; U; Android 13; zh-cn; 2211133C Build/TKQ1.220905.001) "
        "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/100.0.4896.127 Mobile "
        "Safari/537.36 XiaoMi/MiuiBrowser/17.7.80731",
        2,
        "小米13",
    ),
    (
        "old WeChat, locale segment",
        "Mozilla/5.0 (Linux; U; Android 4.4.2; zh-cn; HUAWEI G7-TL00 Build/HuaweiG7-TL00) "
        "AppleWebKit/534.30 (KHTML, like Gecko) Version/4.0 Mobile Safari/534.30 "
        "MicroMessenger/6.0.0.54_r849063.501 NetType/WIFI",
        2,
        "华为Ascend G7",
    ),
    (
        "Huawei browser on HarmonyOS 4 (Android compatible)",
        "Mozilla/5.0 (Linux; Android 12; HarmonyOS; ALN-AL00; HMSCore 6.12.0.302) "
        "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/99.0.4844.88 HuaweiBrowser/14.0.5.302 "
        "Mobile Safari/537.36",
        2,
        "华为Mate 60 Pro",
    ),
    (
        "unknown Android code",
        "Mozilla/5.0 (Linux; Android 14; ABC-123 Build/UKQ1; wv) AppleWebKit/537.36 (KHTML, like "
        "Gecko) Version/4.0 Chrome/130.0 Mobile Safari/537.36 "
        "MicroMessenger/8.0.55.2780(0x28003737)",
        2,
        "ABC-123",
    ),
    (
        "Chrome reduced UA (no model)",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Mobile Safari/537.36",
        2,
        None,
    ),
    (
        "iPhone Safari",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        1,
        "苹果iPhone",
    ),
    (
        "OpenHarmony PC",
        "Mozilla/5.0 (PC; OpenHarmony 5.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/114.0.0.0 Safari/537.36 ArkWeb/4.1.6.1",
        3,
        None,
    ),
    (
        "Mac Safari",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Safari/605.1.15",
        3,
        None,
    ),
    (
        "Windows Edge",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
        3,
        None,
    ),
    (
        "Linux Firefox",
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        3,
        None,
    ),
    ("bare Mozilla", "Mozilla/5.0", None, None),
    ("empty", "", None, None),
    ("blank", "   ", None, None),
]


@pytest.mark.parametrize(
    ("ua", "platform", "device"), [u[1:] for u in UAS], ids=[u[0] for u in UAS]
)
def test_ua_info(ua: str, platform: int | None, device: str | None) -> None:
    assert ua_info(ua) == UAInfo(platform=platform, device=device, is_bot=False)


BOTS: list[tuple[str, str]] = [
    ("Googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
    (
        "Googlebot smartphone",
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, "
        "like Gecko) Chrome/121.0.6167.160 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
        "+http://www.google.com/bot.html)",
    ),
    (
        "Baiduspider",
        "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
    ),
    (
        "Baiduspider-render",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 9_1 like Mac OS X) AppleWebKit/601.1.46 (KHTML, like "
        "Gecko) Version/9.0 Mobile/13B143 Safari/601.1 (compatible; Baiduspider-render/2.0; "
        "+http://www.baidu.com/search/spider.html)",
    ),
    ("bingbot", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"),
    (
        "YisouSpider",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/69.0.3497.81 YisouSpider/5.0 Safari/537.36",
    ),
    ("Sogou", "Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)"),
    (
        "360Spider",
        "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/50.0.2661.102 Safari/537.36; 360Spider",
    ),
    (
        "Bytespider",
        "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile "
        "Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)",
    ),
    (
        "PetalBot",
        "Mozilla/5.0 (Linux; Android 7.0;) AppleWebKit/537.36 (KHTML, like Gecko) Mobile "
        "Safari/537.36 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)",
    ),
    (
        "WeChat crawler",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 15_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Mobile/15E148 MicroMessenger/8.0.20(0x18001442) NetType/WIFI Language/zh_CN "
        "wxspider",
    ),
    (
        "HeadlessChrome",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/120.0.6099.109 Safari/537.36",
    ),
    ("UptimeRobot", "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)"),
    ("Scrapy", "Scrapy/2.11.0 (+https://scrapy.org)"),
    # generic HTTP clients count as bots
    ("curl", "curl/8.5.0"),
    ("python-requests", "python-requests/2.31.0"),
    ("Python-urllib", "Python-urllib/3.11"),
    ("aiohttp", "Python/3.11 aiohttp/3.9.1"),
    ("httpx", "python-httpx/0.27.0"),
    ("Wget", "Wget/1.21.4"),
    ("Go", "Go-http-client/1.1"),
    ("okhttp", "okhttp/4.12.0"),
    ("Apache-HttpClient", "Apache-HttpClient/4.5.14 (Java/17.0.8)"),
    ("axios", "axios/1.6.2"),
    ("Postman", "PostmanRuntime/7.36.0"),
]


@pytest.mark.parametrize("ua", [b[1] for b in BOTS], ids=[b[0] for b in BOTS])
def test_bots(ua: str) -> None:
    # Bots get no platform or device: they are filtered anyway.
    assert ua_info(ua) == UAInfo(platform=None, device=None, is_bot=True)


def test_ua_info_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ua_info(UA_HONOR_V20).is_bot = True  # type: ignore[misc]


# -- the platform field -------------------------------------------------------------------------

PLATFORMS: list[tuple[object, int | str | None]] = [
    ("ios", 1),
    ("iOS", 1),
    (" iPhone ", 1),
    ("iphone", 1),
    ("ipad", 1),
    ("android", 2),
    ("Android", 2),
    ("ANDROID\n", 2),
    ("ohos", 3),
    ("OHOS", 3),
    ("harmonyos", 3),
    ("windows", 3),
    ("mac", 3),
    ("linux", 3),
    ("其他", 3),
    ("symbian", 3),
    ("devtools", "devtools"),
    ("DevTools", "devtools"),
    (None, None),
    ("", None),
    ("   ", None),
    ("未知", None),
    ("unknown", None),
    ("Unknown", None),
    (0, None),
    (1, 1),
    (2, 2),
    (3, 3),
    ("0", None),
    ("1", 1),
    ("2", 2),
    (" 3 ", 3),
]


@pytest.mark.parametrize(("value", "expected"), PLATFORMS)
def test_parse_platform(value: object, expected: int | str | None) -> None:
    assert parse_platform(value) == expected


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (4, ValueError),
        (-1, ValueError),
        ("4", ValueError),
        ("12", ValueError),
        (True, TypeError),
        (1.0, TypeError),
        (b"ios", TypeError),
        (["ios"], TypeError),
    ],
)
def test_parse_platform_rejects(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="platform"):
        parse_platform(value)

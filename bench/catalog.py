"""Reference data of the synthetic app: where users are, which phones they hold, what bots send.

Shares are rough public figures (CNNIC provincial internet users, Chinese smartphone market
shares 2023-2025); they only need to be plausible. Every (brand, model) pair below is a real
``wx.getSystemInfo()`` value that weanalysis' device database resolves to a marketing name
(checked when the list was made: ``device_detector`` knows each code).
"""

from __future__ import annotations

from dataclasses import dataclass

# Provincial share of China's internet users (per mille, approximate), GB/T 2260 ids.
PROVINCE_WEIGHTS: dict[int, float] = {
    44: 110,  # 广东
    32: 70,  # 江苏
    37: 68,  # 山东
    33: 62,  # 浙江
    41: 60,  # 河南
    51: 55,  # 四川
    13: 50,  # 河北
    43: 42,  # 湖南
    42: 42,  # 湖北
    34: 38,  # 安徽
    35: 34,  # 福建
    45: 30,  # 广西
    31: 28,  # 上海
    36: 28,  # 江西
    21: 28,  # 辽宁
    53: 27,  # 云南
    11: 26,  # 北京
    61: 26,  # 陕西
    50: 22,  # 重庆
    14: 22,  # 山西
    52: 22,  # 贵州
    23: 18,  # 黑龙江
    15: 14,  # 内蒙古
    22: 14,  # 吉林
    65: 14,  # 新疆
    62: 14,  # 甘肃
    12: 12,  # 天津
    46: 8,  # 海南
    64: 5,  # 宁夏
    63: 4,  # 青海
    54: 2,  # 西藏
    81: 2,  # 香港
    82: 0.5,  # 澳门
    71: 0.5,  # 台湾
}
OVERSEAS_SHARE = 0.003  # users abroad (province 海外)
CITY_ZIPF = 1.0  # city weight within a province: 1 / rank**s, in GB/T 2260 order (capital first)
DEVICE_ZIPF = 1.0  # model weight within a brand: 1 / rank**s, in the order listed below


@dataclass(frozen=True)
class Brand:
    brand: str  # as wx.getSystemInfo() reports it
    platform: str  # wx platform value
    share: float  # share of users
    models: tuple[str, ...]


def _codes(text: str) -> tuple[str, ...]:
    return tuple(text.split())


IPHONES = (
    "iPhone 13<iPhone14,5>",
    "iPhone 14 Pro Max<iPhone15,3>",
    "iPhone 15 Pro Max<iPhone16,2>",
    "iPhone 12<iPhone13,2>",
    "iPhone 14 Pro<iPhone15,2>",
    "iPhone 11<iPhone12,1>",
    "iPhone 13 Pro Max<iPhone14,3>",
    "iPhone 15<iPhone15,4>",
    "iPhone 16 Pro Max<iPhone17,2>",
    "iPhone 14<iPhone14,7>",
    "iPhone 13 Pro<iPhone14,2>",
    "iPhone 15 Pro<iPhone16,1>",
    "iPhone 16 Pro<iPhone17,1>",
    "iPhone XR<iPhone11,8>",
    "iPhone 12 Pro Max<iPhone13,4>",
    "iPhone 16<iPhone17,3>",
    "iPhone 12 Pro<iPhone13,3>",
    "iPhone 11 Pro Max<iPhone12,5>",
    "iPhone 17 Pro Max<iPhone18,2>",
    "iPhone 17 Pro<iPhone18,1>",
    "iPhone 17<iPhone18,3>",
    "iPhone X<iPhone10,3>",
    "iPhone XS Max<iPhone11,6>",
    "iPhone 14 Plus<iPhone14,8>",
    "iPhone 15 Plus<iPhone15,5>",
    "iPhone 16 Plus<iPhone17,4>",
    "iPhone 8 Plus<iPhone10,2>",
    "iPhone 11 Pro<iPhone12,3>",
    "iPhone SE (2nd generation)<iPhone12,8>",
    "iPhone 13 mini<iPhone14,4>",
    "iPhone 12 mini<iPhone13,1>",
    "iPhone XS<iPhone11,2>",
    "iPhone 8<iPhone10,1>",
    "iPhone 7 Plus<iPhone9,2>",
    "iPhone 7<iPhone9,1>",
    "iPhone 16e<iPhone17,5>",
    "iPhone Air<iPhone18,4>",
    "iPhone SE (3rd generation)<iPhone14,6>",
    "iPad Pro 11-inch<iPad13,4>",
    "iPad Air (5th generation)<iPad13,16>",
    "iPad (9th generation)<iPad12,1>",
)

HUAWEI = _codes(
    "ALN-AL00 NOH-AN00 BRA-AL00 PLR-AL00 HBN-AL00 ELS-AN00 CLS-AL00 ADY-AL00 JAD-AL50 ABR-AL00 "
    "DCO-AL00 CET-AL00 MNA-AL00 LNA-AL00 NOP-AN00 OCE-AN10 ALN-AL10 VOG-AL00 ELE-AL00 LIO-AN00 "
    "TAS-AL00 ANA-AN00 LYA-AL00 HMA-AL00 FOA-AL00 GOA-AL80 NAM-AL00 ANG-AN00 BRQ-AN00 JSC-AN00 "
    "CHL-AL60 JEF-AN00 MED-AL00 WKG-AN00 DVC-AN20 STK-AL00 ALT-AL00 TET-AN00 PAL-AL00 CDY-AN00 "
    "WLZ-AN00 SEA-AL10 MAR-AL00 JNY-AL10 EVR-AL00 CLT-AL00 EML-AL00 BLA-AL00 ALP-AL00"
)
# HarmonyOS NEXT phones report platform "ohos".
HUAWEI_OHOS = _codes("ALN-AL00 PLR-AL00 CLS-AL00 HBN-AL00 BRA-AL00 ADY-AL00")
HONOR = _codes(
    "REA-AN00 ALI-AN00 FNE-AN00 BVL-AN00 PGT-AN10 LGE-AN00 TNA-AN00 NTH-AN00 RMO-AN00 DIO-AN00 "
    "ANY-AN00 VNE-AN00 CMA-AN00 LLY-AN00 ELZ-AN00 BVL-AN16 PTP-AN00 FRI-AN00 PCT-AL10 YAL-AL00 "
    "OXF-AN00 BKL-AL20 KOZ-AL00"
)
XIAOMI = _codes(
    "23127PN0CC 2211133C 24129PN74C M2012K11AC 22041211AC 23113RKC6C 2201123C 23116PN5BC "
    "2410DPN6CC 2206123SC M2011K2C 24122RKC7C 22101316C 2312DRA50C 23090RA98C 23054RA19C "
    "22101317C 23013RK75C 21091116AC M2104K10AC M2012K11C M2102K1AC 2304FPN6DC 2112123AC "
    "22011211C 2201122C 22021211RC 2203121C 23049RAD8C M2006C3LC 24053PY09C 2107119DC "
    "M2101K9C M2007J3SC 22081212C 2106118C M2011J18C 22061218C"
)
REDMI = (
    "Redmi K30",
    "Redmi K30 Pro",
    "Redmi Note 8 Pro",
    "Redmi Note 9 Pro",
    "Redmi 9A",
    "Redmi K40",
    "Redmi Note 7",
)
OPPO = _codes(
    "PJH110 PKB110 PGEM10 PJJ110 PHZ110 PGBM10 PFJM10 PEQM00 PEGM00 PFFM10 PFEM10 PEEM00 "
    "PKC110 PGX110 PHM110 PJR110 PGJM10 PEXM00 PDKM00 PFDM00 PFCM00 PHJ110 PHQ110 PEHM00 "
    "PDVM00 PEAM00 PDCM00 PCRT00 PCLM10 PCAM00 PBEM00 PBBM00 PDBM00 PCHM30 PBAM00 PKH110 PDEM30"
)
VIVO = _codes(
    "V2309A V2324A V2405A V2241A V2227A V2307A V2329A V2408A V2203A V2239A V2183A V2145A "
    "V2134A V2047A V2046A V2049A V2217A V2243A V2254A V2304A V2302A V2199A V2172A V2141A "
    "V2055A V2024A V1981A V2130A V2163A V2036A V2031A V1986A V1962A V1938T V2072A V2118A "
    "V2148A V2220A V1809A"
)
SAMSUNG = _codes(
    "SM-S9280 SM-S9210 SM-S9180 SM-S9110 SM-F9460 SM-F9560 SM-S9380 SM-S9310 SM-G9910 "
    "SM-G9980 SM-S9080 SM-F7210 SM-F9360 SM-F7110 SM-G9960 SM-N9760 SM-N9860 SM-G9860 "
    "SM-A5360 SM-A7160"
)
ONEPLUS = _codes(
    "PJZ110 PJD110 PHB110 PKR110 PJA110 PHK110 PGP110 PGKM10 NE2210 LE2120 LE2110 KB2000 "
    "IN2010 HD1900 GM1910"
)
REALME = _codes(
    "RMX3706 RMX3888 RMX3820 RMX3800 RMX3709 RMX3560 RMX3300 RMX3366 RMX3350 RMX3031 RMX2202 "
    "RMX2200"
)

BRANDS: tuple[Brand, ...] = (
    Brand("iPhone", "ios", 0.235, IPHONES),
    Brand("HUAWEI", "android", 0.150, HUAWEI),
    Brand("HUAWEI", "ohos", 0.012, HUAWEI_OHOS),
    Brand("vivo", "android", 0.140, VIVO),
    Brand("OPPO", "android", 0.130, OPPO),
    Brand("HONOR", "android", 0.100, HONOR),
    Brand("Xiaomi", "android", 0.110, XIAOMI),
    Brand("Redmi", "android", 0.025, REDMI),
    Brand("OnePlus", "android", 0.025, ONEPLUS),
    Brand("realme", "android", 0.020, REALME),
    Brand("samsung", "android", 0.020, SAMSUNG),
    Brand("Meizu", "android", 0.005, ("MEIZU 21", "MEIZU 20", "MEIZU 18", "MEIZU 18 Pro")),
    Brand("nubia", "android", 0.003, ("NX769J", "NX729J", "NX709J")),
    Brand("ZTE", "android", 0.002, ("A2023P", "A2022P")),
    Brand("Lenovo", "android", 0.001, ("L79031",)),
    Brand("google", "android", 0.001, ("Pixel 8", "Pixel 7")),
    # WeChat for PC and Mac run mini programs too.
    Brand("microsoft", "windows", 0.008, ("microsoft",)),
    Brand("apple", "mac", 0.004, ("MacBookPro18,3", "Mac14,2")),
)

# What the WeChat developer tools report: such visits are filtered by weanalysis.
DEVTOOLS_MODELS = ("iPhone 6/7/8", "iPhone X", "iPhone 12/13 (Pro)")

# Crawlers and HTTP clients that hit H5 pages: filtered as bots.
BOT_USER_AGENTS = (
    "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "Scrapy/2.11.0 (+https://scrapy.org)",
)

# H5 pages opened inside WeChat: no wx.getSystemInfo(), only the User-Agent.
UA_ANDROID = (
    "Mozilla/5.0 (Linux; Android 13; {model} Build/TP1A.220905.001; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160065 "
    "MMWEBSDK/20231202 MMWEBID/{webid} MicroMessenger/8.0.47.2560(0x28002F30) WeChat/arm64 "
    "Weixin NetType/WIFI Language/zh_CN ABI/arm64"
)
UA_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 MicroMessenger/8.0.48(0x18003029) NetType/WIFI Language/zh_CN"
)
UA_OHOS = (
    "Mozilla/5.0 (Phone; OpenHarmony 5.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/114.0.0.0 Safari/537.36 ArkWeb/4.1.6.1 Mobile MicroMessenger/8.0.1.47(0x20010130) "
    "NetType/WIFI Language/zh_CN"
)
UA_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/81.0.4044.138 Safari/537.36 NetType/WIFI MicroMessenger/7.0.20.1781(0x6700143B) "
    "WindowsWechat(0x6307001e)"
)
UA_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "MicroMessenger/6.8.0(0x16080000) MacWechat/3.8.7(0x13080712) NetType/WIFI"
)

# Age of WeChat users (bucket share), for the people's true ages.
AGE_BANDS: tuple[tuple[int, int, float], ...] = (
    (12, 17, 0.04),
    (18, 24, 0.20),
    (25, 29, 0.18),
    (30, 39, 0.28),
    (40, 49, 0.18),
    (50, 75, 0.12),
)
# Local time of day of visits: relative weight of each hour 0..23 (Asia/Shanghai).
HOUR_WEIGHTS = (
    2, 1, 1, 0.5, 0.5, 1, 2, 4, 6, 6, 6, 7, 9, 8, 6, 6, 6, 6, 7, 8, 10, 11, 9, 5,
)  # fmt: skip

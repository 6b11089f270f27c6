# ruff: noqa: F811  (the fixtures browser and page_errors come from test_dashboard_browser)
"""The explorer in a real browser (Debian's Chromium through playwright), on the demo app:
drill-down by clicking a province and a gender slice, every number on the page against the API,
filters kept in the URL, comparison, custom range, trend and heat map, a failed load, several
apps, a phone, and the accessibility items of issue 10.

Set WEANALYSIS_SCREENSHOT_DIR=docs to refresh the README's explorer screenshots.
"""

from __future__ import annotations

import os
import time
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.servers import cli
from tests.test_dashboard_browser import (  # noqa: F401 (fixtures)
    APPID,
    DESKTOP,
    PHONE,
    browser,
    demo_server,
    open_page,
    page_errors,
    sign_in,
)
from weanalysis.portrait.embedded import EmbeddedSource
from weanalysis.portrait.explore import Explore, explore
from weanalysis.portrait.query import PortraitQuery
from weanalysis.store import Store

pytestmark = pytest.mark.slow
SECOND, SECOND_SECRET = "wxsecond00000000", "second-secret-00"
ENV: dict[str, str] = {}  # the demo server's environment (its data folder), for the CLI


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`weanalysis demo` serving, and a second (empty) app registered beside the demo app."""
    with demo_server(tmp_path_factory) as (base, env):
        r = cli(env, "app", "add", SECOND, "--secret", SECOND_SECRET)
        assert r.returncode == 0, r.stderr
        ENV.update(env)
        yield base


def api(page, path: str, **params) -> dict:
    parts = []
    for k, v in params.items():
        for one in v if isinstance(v, list) else [v]:
            parts.append(f"{k}={quote(str(one))}")
    r = page.request.get(path + "?" + "&".join(parts))
    assert r.ok, r.text()
    return r.json()


def ready(page, where: str = ""):
    page.wait_for_selector(f'body[data-state="ready"][data-where="{where}"]')


def shown(page) -> dict:
    """Every number the page shows for the set on screen."""
    return page.evaluate(
        """() => {
          const rows = (id) => [...document.querySelectorAll('#' + id + ' li[data-name]')]
            .map(li => [li.dataset.key, Number(li.dataset.value),
                        li.querySelector('.rank-share').textContent,
                        (li.querySelector('.rank-delta') || {}).textContent || null]);
          const data = (id) => echarts.getInstanceByDom(document.getElementById(id))
            .getOption().series[0].data;
          const v = (id) => document.getElementById(id);
          return {
            totals: ['new', 'active'].map(u => v('total-' + u).dataset.value),
            deltas: ['new', 'active'].map(u => v('total-' + u + '-delta').dataset.delta || null),
            province: rows('province-list'), city: rows('city-list'),
            genders: data('chart-genders').map(d => [d.key, d.value]),
            platforms: data('chart-platforms').map(d => [d.key, d.value]),
            ages: data('chart-ages').map(d => [d.key, d.value]),
            devices: data('chart-devices').map(d => [d.key, d.value]),
            heat: data('chart-heat').map(d => [d.keys[0], d.keys[1], d.value[2]]),
            trend: echarts.getInstanceByDom(v('chart-trend')).getOption().series
              .map(s => [s.name, s.data]),
            chips: [...document.querySelectorAll('#chips .chip')].map(c => c.dataset.where),
          };
        }"""
    )


def pct(share: float) -> str:
    p = share * 100
    return "0%" if not share else ("<0.01%" if p < 0.01 else f"{p:.2f}%")


def key(dim: str, it: dict) -> str:
    return it["name"] if dim == "devices" else str(it["id"])


def delta(dim: str, it: dict, prev: dict) -> str:
    before = next((p for p in prev[dim] if key(dim, p) == key(dim, it)), None)
    value = before["value"] if before else 0
    d = it["value"] - value
    sign = "▲" if d > 0 else "▼" if d < 0 else "＝"
    return f"{sign}{abs(d):,}" if d else sign


def assert_page_equals_api(page, doc: dict, trend_new: dict, trend_active: dict, users="active"):
    """Totals, comparison, every list, chart, heat-map cell and trend point against the API."""
    got = shown(page)
    s, prev = doc[users], doc["previous"][users]
    assert got["totals"] == [str(doc["new"]["total"]), str(doc["active"]["total"])]
    assert got["deltas"] == [
        str(doc[u]["total"] - doc["previous"][u]["total"]) for u in ("new", "active")
    ]
    for dim, n in (("province", 12), ("city", 20)):
        want = [[key(dim, it), it["value"], pct(it["share"])] for it in s[dim][:n]]
        assert [r[:3] for r in got[dim]] == want
        for row, it in zip(got[dim], s[dim][:n], strict=True):
            assert row[3].startswith(delta(dim, it, prev)), (row, it)
    for dim in ("genders", "platforms"):
        assert got[dim] == [[key(dim, it), it["value"]] for it in s[dim]]
    ages = {str(it["id"]): it["value"] for it in s["ages"]}
    # every bucket in fixed order, 未知 last (drawn bottom-up)
    assert [k for k, _ in reversed(got["ages"])] == ["1", "2", "3", "4", "5", "6", "0"]
    assert {k: v for k, v in got["ages"] if v} == ages
    assert got["devices"] == [[it["name"], it["value"]] for it in reversed(s["devices"])]
    cells = {(str(c["row"]), str(c["col"])): c["value"] for c in s["crosstab"]["cells"]}
    assert {(r, c): v for r, c, v in got["heat"]} == cells  # genders × ages: every cell shown
    assert got["trend"] == [
        ["活跃用户", [d["total"] for d in trend_active["days"]]],
        ["新用户", [d["total"] for d in trend_new["days"]]],
    ]
    return got


def test_drill_down_compare_and_share_a_link(browser, server, page_errors):
    page = open_page(browser, server, page_errors)
    sign_in(page)
    ready(page)
    session = page.request.get("/api/v1/session").json()
    y = date.fromisoformat(session["yesterday"])
    b = y - timedelta(days=6)
    span = {"begin": f"{b:%Y%m%d}", "end": f"{y:%Y%m%d}"}

    def check(where: list[str]):
        doc = api(page, "/api/v1/portrait", **span, where=where, compare="true",
                  crosstab="genders,ages")  # fmt: skip
        tn = api(page, "/api/v1/trend", **span, where=where, users="new", dim="platforms")
        ta = api(page, "/api/v1/trend", **span, where=where, users="active", dim="platforms")
        return assert_page_equals_api(page, doc, tn, ta), doc

    got, doc = check([])
    # 1. click a province in the ranked list: the whole page shows that segment within 1 s
    first = doc["active"]["province"][0]
    t0 = time.monotonic()
    page.click(f'#province-list li[data-key="{first["id"]}"]')
    ready(page, f"province={first['id']}")
    click_s = time.monotonic() - t0
    assert click_s < 1.0, click_s
    got, doc = check([f"province={first['id']}"])
    assert got["chips"] == [f"province={first['id']}"]
    assert [it["id"] for it in doc["active"]["province"]] == [first["id"]]
    # 2. click the 女 slice of the gender donut (a real mouse click on the canvas)
    xy = page.evaluate(
        """() => {
          const c = echarts.getInstanceByDom(document.getElementById('chart-genders'));
          const data = c.getModel().getSeriesByIndex(0).getData();
          for (let i = 0; i < data.count(); i++) {
            if (data.getRawDataItem(i).key !== '2') continue;
            const l = data.getItemLayout(i), a = (l.startAngle + l.endAngle) / 2;
            const r = (l.r0 + l.r) / 2;
            return [l.cx + r * Math.cos(a), l.cy + r * Math.sin(a)];
          }
          return null;
        }"""
    )
    assert xy is not None
    page.locator("#chart-genders").scroll_into_view_if_needed()
    page.wait_for_timeout(600)  # the donut's animation: click where the slice has come to rest
    box = page.locator("#chart-genders").bounding_box()
    t0 = time.monotonic()
    page.mouse.click(box["x"] + xy[0], box["y"] + xy[1])
    both = f"province={first['id']}&genders=2"
    ready(page, both)
    assert time.monotonic() - t0 < 1.0
    got, doc = check([f"province={first['id']}", "genders=2"])
    assert got["chips"] == [f"province={first['id']}", "genders=2"]
    assert [it["id"] for it in doc["active"]["genders"]] == [2]
    # 3. the URL keeps the filters: a fresh tab with the link shows the same view
    link = page.url
    assert "where=province%3D" in link and "where=genders%3D2" in link
    other = page.context.new_page()
    other.goto(link)
    ready(other, both)
    assert shown(other)["totals"] == got["totals"]
    other.close()
    # 4. removing a chip widens the segment again
    page.click('#chips .chip[data-where="genders=2"] .chip-x')
    ready(page, f"province={first['id']}")
    page.click('[data-testid="clear-filters"]')
    ready(page)
    assert page_errors == []
    page.context.close()


def test_custom_range_heat_map_and_a_failed_load(browser, server, page_errors, tmp_path):
    page = open_page(browser, server, page_errors)
    sign_in(page)
    ready(page)
    y = date.fromisoformat(page.request.get("/api/v1/session").json()["yesterday"])
    # a custom range of 12 days
    page.click('[data-testid="period-custom"]')
    ready(page)
    b = y - timedelta(days=11)
    page.fill('[data-testid="begin-date"]', b.isoformat())
    page.wait_for_selector(f'body[data-state="ready"][data-ref-date="{b:%Y%m%d}-{y:%Y%m%d}"]')
    assert "共 12 天" in page.text_content('[data-testid="range-label"]')
    span = {"begin": f"{b:%Y%m%d}", "end": f"{y:%Y%m%d}"}
    # the heat map of any two dimensions, with its table view
    page.select_option('[data-testid="ct-rows"]', "platforms")
    page.select_option('[data-testid="ct-cols"]', "genders")
    page.wait_for_function(
        "() => document.body.dataset.state === 'ready' && location.hash.includes('ct=platforms')"
    )
    doc = api(page, "/api/v1/portrait", **span, crosstab="platforms,genders")
    cells = {(str(c["row"]), str(c["col"])): c["value"] for c in doc["active"]["crosstab"]["cells"]}
    got = shown(page)["heat"]
    assert {(r, c): v for r, c, v in got} == cells
    page.click('[data-testid="heat-card"] summary')
    table = page.locator('[data-testid="tv-heat"] table')
    assert table.locator("tbody tr").count() == len({r for r, _ in cells})
    # the trend of another dimension
    page.select_option('[data-testid="trend-dim"]', "ages")
    page.wait_for_function(
        "() => document.body.dataset.state === 'ready' && location.hash.includes('trend=ages')"
    )
    t = api(page, "/api/v1/trend", **span, dim="ages", users="active")
    page.click('[data-testid="trend-card"] summary')
    rows = page.locator('[data-testid="tv-trend"] tbody tr')
    assert rows.count() == 12
    assert rows.nth(11).locator("td").nth(1).text_content() == f"{t['days'][11]['total']:,}"
    # a failed load never leaves the old numbers under the new period's label
    page.route("**/api/v1/portrait?*", lambda route: route.abort())
    page.click('[data-testid="period-30"]')
    page.wait_for_selector('body[data-state="error"]')
    assert page.text_content('[data-testid="total-active"]') == "–"
    assert page.is_hidden("#content")
    assert page.is_visible('[data-testid="error-banner"]')
    page.unroute("**/api/v1/portrait?*")
    page.click('[data-testid="period-7"]')
    ready(page)
    assert page_errors == []
    page.context.close()


def test_accessibility_items(browser, server, page_errors):
    page = open_page(browser, server, page_errors)
    # the green primary button meets WCAG AA (4.5:1) with its white text
    ratio = page.evaluate(
        """() => {
          const lum = (c) => {
            const [r, g, b] = c.match(/\\d+/g).slice(0, 3).map(Number).map(v => v / 255)
              .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
            return 0.2126 * r + 0.7152 * g + 0.0722 * b;
          };
          const s = getComputedStyle(document.getElementById('signin-button'));
          const [a, b] = [lum(s.color), lum(s.backgroundColor)].sort((x, y) => y - x);
          return (a + 0.05) / (b + 0.05);
        }"""
    )
    assert ratio >= 4.5, ratio
    sign_in(page)
    ready(page)
    # a text alternative for every chart: a table view under each, and a label on each canvas
    assert page.locator("details.tv").count() == 7
    for chart in page.locator(".chart").all():
        assert chart.get_attribute("role") == "img" and chart.get_attribute("aria-label")
    # 未知 is listed, never ranked with a medal
    unknown = page.locator('#province-list li[data-key="0"] .rank-no')
    if unknown.count():
        assert unknown.text_content() == "–"
        assert "rank-top" not in (unknown.get_attribute("class") or "")
    # the map's colour scale carries numbers, and the 南海诸岛 inset is drawn
    opt = page.evaluate(
        """() => {
          const o = echarts.getInstanceByDom(document.getElementById('map')).getOption();
          return {text: o.visualMap[0].text, regions: o.series[0].regions.map(r => r.name)};
        }"""
    )
    assert opt["text"][1] == "0" and opt["text"][0].endswith("人") and "南海诸岛" in opt["regions"]
    # counts visible without hover: the donut labels carry them
    label = page.evaluate(
        """() => {
          const c = echarts.getInstanceByDom(document.getElementById('chart-genders'));
          return c.getOption().series[0].label.formatter({name: '男', data: {value: 1234, share: 0.5}});
        }"""
    )
    assert label == "男\n1,234 · 50.00%"  # (on a phone: three lines)
    assert page_errors == []
    page.context.close()


def test_phone_and_several_apps(browser, server, page_errors):
    page = open_page(browser, server, page_errors, viewport=PHONE)
    sign_in(page)
    ready(page)
    page.click("#province-list li[data-key]:not([data-key='0'])")
    page.wait_for_selector('body[data-state="ready"]:not([data-where=""])')
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # the full name of a list item is never cut on a phone
    cut = page.evaluate(
        """() => [...document.querySelectorAll('.rank-name')]
             .filter(e => e.scrollWidth > e.clientWidth + 1).length"""
    )
    assert cut == 0
    # no overlapping labels in the ranked rows: each cell stays in its own box
    overlaps = page.evaluate(
        """() => [...document.querySelectorAll('.rank li')].filter(li => {
             const cells = [...li.children].filter(c => getComputedStyle(c).display !== 'none')
               .map(c => c.getBoundingClientRect());
             return cells.some((a, i) => cells.slice(i + 1).some(b =>
               a.right > b.left + 1 && b.right > a.left + 1 && a.bottom > b.top + 1 && b.bottom > a.top + 1));
           }).length"""
    )
    assert overlaps == 0
    # a second app in the same browser, then switching back
    page.click('[data-testid="add-app"]')
    sign_in(page, SECOND, SECOND_SECRET)
    page.wait_for_selector('body[data-state="empty"]')
    assert page.locator('[data-testid="app-switch"] option').count() == 2
    page.select_option('[data-testid="app-switch"]', APPID)
    page.wait_for_selector('body[data-state="ready"]')
    assert page.input_value('[data-testid="app-switch"]') == APPID
    assert "app=" + APPID in page.url
    assert page_errors == []
    page.context.close()


def test_screenshots(browser, server, page_errors, tmp_path):
    """The README's explorer screenshots: a drill-down on a laptop and on a phone."""
    folder = Path(os.environ.get("WEANALYSIS_SCREENSHOT_DIR") or tmp_path)
    for name, viewport in (("explorer.png", DESKTOP), ("explorer-phone.png", PHONE)):
        page = open_page(browser, server, page_errors, viewport=viewport)
        sign_in(page)
        ready(page)
        page.click("#province-list li[data-key]:not([data-key='0'])")
        page.wait_for_selector('body[data-state="ready"]:not([data-where=""])')
        page.evaluate("() => { document.activeElement.blur(); window.scrollTo(0, 0); }")
        page.wait_for_timeout(700)
        page.screenshot(path=str(folder / name), full_page=True)
        assert (folder / name).stat().st_size > 50_000
        page.context.close()
    assert page_errors == []


def test_small_groups_withheld_on_the_page(browser, server, page_errors):
    """Last: `app set --min-users` on the serving app; the page says what it leaves out."""
    assert cli(ENV, "app", "set", APPID, "--min-users", "40").returncode == 0
    page = open_page(browser, server, page_errors)
    sign_in(page)
    ready(page)
    y = date.fromisoformat(page.request.get("/api/v1/session").json()["yesterday"])
    b = y - timedelta(days=6)
    doc = api(page, "/api/v1/portrait", begin=f"{b:%Y%m%d}", end=f"{y:%Y%m%d}")
    w = doc["withheld"]
    assert w["min_users"] == 40 and w["active"]["city"] > 0
    note = page.text_content('[data-testid="privacy-note"]')
    assert "少于 40 人的数据不显示" in note and f"城市 {w['active']['city']} 项" in note
    got = shown(page)
    assert all(v >= 40 for _, v, *_ in got["city"]) and all(v >= 40 for _, v in got["devices"])
    assert [r[0] for r in got["city"]] == [str(it["id"]) for it in doc["active"]["city"][:20]]
    # a segment smaller than K (found in the store itself, without withholding): no total either
    store = Store(Path(ENV["WEANALYSIS_DATA"]))
    q = PortraitQuery.of(APPID, b, y)
    full = explore(EmbeddedSource.of(store, APPID), q, Explore())
    small = next(it for it in full.active.lists["city"] if 0 < it.value < 40)
    store.close()
    link = page.url + f"&where=city%3D{small.id}"
    other = page.context.new_page()
    other.goto(link)
    other.wait_for_selector('body[data-state="empty"]')
    assert other.text_content('[data-testid="total-active"]') == "<40"
    assert "人数过少" in other.text_content("#empty-title")
    assert page_errors == []
    page.context.close()

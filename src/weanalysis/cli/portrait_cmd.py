"""``weanalysis portrait`` and ``weanalysis trend``: a window's portrait as the WeChat API returns
it, optionally restricted to a segment, with a cross-tab, the previous window, small groups
withheld; and a dimension's daily lists over a window."""

from __future__ import annotations

from datetime import date

import click

from weanalysis.cli.common import echo_json, fail, open_store, registered_app
from weanalysis.portrait.embedded import EmbeddedSource
from weanalysis.portrait.explore import (
    SPELLINGS,
    USERS,
    Explore,
    ExploreError,
    dimension,
    explore,
    parse_crosstab,
    parse_where,
    trend,
)
from weanalysis.portrait.imported import (
    ImportedPortraits,
    NotImported,
    explore_imported,
    is_imported,
)
from weanalysis.portrait.query import DateFormatError, PortraitQuery, parse_date
from weanalysis.store import Store
from weanalysis.wechat.dialect import portrait_document, trend_document


def _window(begin: str, end: str) -> tuple[date, date]:
    try:
        b, e = parse_date(begin), parse_date(end)
    except DateFormatError as err:
        fail(str(err))
    if b > e:
        fail(f"--begin {begin} is after --end {end}")
    return b, e


def _app_store(ctx: click.Context, appid: str) -> Store:
    store = open_store(ctx, create=False)
    registered_app(store, appid)
    return store


def window_options(f):
    f = click.option("--end", required=True, help="Last day, yyyymmdd or yyyy-mm-dd (inclusive).")(
        f
    )
    f = click.option(
        "--begin", required=True, help="First day, yyyymmdd or yyyy-mm-dd (app's time zone)."
    )(f)
    return click.option("--appid", required=True, help="The registered app.")(f)


def segment_options(f):
    f = click.option(
        "--min-users",
        type=click.IntRange(0),
        default=0,
        metavar="K",
        help="Withhold every list item, cross-tab cell and segment total of fewer than K users "
        "(the app's own setting, `app set --min-users`, applies when larger).",
    )(f)
    return click.option(
        "--where",
        multiple=True,
        metavar="DIM=ID",
        help=f"Keep only users whose DIM is ID (DIM: {SPELLINGS}; a device by its name). "
        "Repeat a DIM for any of several values; different DIMs must all hold.",
    )(f)


@click.command()
@window_options
@segment_options
@click.option(
    "--crosstab",
    metavar="A,B",
    help="Add to each user set the distinct users per pair of values of two lists (genders,ages).",
)
@click.option(
    "--compare",
    is_flag=True,
    help="Add `previous`: the window of the same length ending the day before --begin.",
)
@click.option("--pretty", is_flag=True, help="Indent the JSON.")
@click.pass_context
def portrait(ctx, appid, begin, end, where, min_users, crosstab, compare, pretty) -> None:
    """Print the portrait of [BEGIN, END] as the WeChat API document (any window length).

    \b
    weanalysis portrait --appid A --begin 20261101 --end 20261130 \\
        --where province=44 --where genders=2 --crosstab genders,ages --compare
    """
    b, e = _window(begin, end)
    try:
        seg = parse_where(where)
        pair = parse_crosstab(crosstab) if crosstab is not None else None
    except ExploreError as err:
        fail(str(err))
    store = _app_store(ctx, appid)
    ex = Explore(
        where=seg,
        crosstab=(pair[0].list_name, pair[1].list_name) if pair else None,
        compare=compare,
        min_users=max(min_users, store.catalog.min_users(appid)),
    )
    q = PortraitQuery.of(appid, b, e)
    try:
        if is_imported(store.app_dir(appid)):  # computed by a cluster: the imported document
            result = explore_imported(ImportedPortraits(store.app_dir(appid), appid), q, ex)
        else:
            result = explore(EmbeddedSource.of(store, appid), q, ex)
    except ExploreError as err:
        fail(str(err))
    except NotImported:
        fail(f"no portrait was imported for {appid} {q.ref_date} (weanalysis portraits import)")
    echo_json(portrait_document(result), pretty=pretty)


@click.command("trend")
@window_options
@click.option("--dim", required=True, help=f"The list to follow ({SPELLINGS}).")
@click.option(
    "--users",
    type=click.Choice(USERS),
    default="active",
    show_default=True,
    help="Each day's new or active users.",
)
@segment_options
@click.option("--pretty", is_flag=True, help="Indent the JSON.")
@click.pass_context
def trend_cmd(ctx, appid, begin, end, dim, users, where, min_users, pretty) -> None:
    """Print, for each day of [BEGIN, END], that day's portrait list of DIM (devices: top 20).

    Days without data are present with total 0 and no items.
    """
    b, e = _window(begin, end)
    try:
        d = dimension(dim)
        seg = parse_where(where)
    except ExploreError as err:
        fail(str(err))
    store = _app_store(ctx, appid)
    k = max(min_users, store.catalog.min_users(appid))
    if is_imported(store.app_dir(appid)):
        fail(f"app {appid} holds imported portraits, not records: a trend needs the records")
    try:
        t = trend(EmbeddedSource.of(store, appid), PortraitQuery.of(appid, b, e), d, users, seg, k)
    except ExploreError as err:
        fail(str(err))
    echo_json(trend_document(t), pretty=pretty)

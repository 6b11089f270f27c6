"""``weanalysis portrait``: print a window's portrait as the WeChat API returns it."""

from __future__ import annotations

import click

from weanalysis.cli.common import echo_json, fail, open_store
from weanalysis.portrait.embedded import EmbeddedSource
from weanalysis.portrait.engine import compute
from weanalysis.portrait.imported import ImportedPortraits, NotImported, is_imported
from weanalysis.portrait.query import DateFormatError, PortraitQuery, parse_date
from weanalysis.wechat.dialect import portrait_document


@click.command()
@click.option("--appid", required=True, help="The registered app.")
@click.option("--begin", required=True, help="First day, yyyymmdd or yyyy-mm-dd (app's time zone).")
@click.option("--end", required=True, help="Last day, yyyymmdd or yyyy-mm-dd (inclusive).")
@click.option("--pretty", is_flag=True, help="Indent the JSON.")
@click.pass_context
def portrait(ctx, appid, begin, end, pretty) -> None:
    """Print the portrait of [BEGIN, END] as the WeChat API document (any window length)."""
    try:
        b, e = parse_date(begin), parse_date(end)
    except DateFormatError as err:
        fail(str(err))
    if b > e:
        fail(f"--begin {begin} is after --end {end}")
    store = open_store(ctx, create=False)
    if store.catalog.get(appid) is None:
        fail(f"app {appid!r} is not registered")
    q = PortraitQuery.of(appid, b, e)
    if is_imported(store.app_dir(appid)):  # computed by a cluster: the imported document
        try:
            result = ImportedPortraits(store.app_dir(appid), appid).get(q.begin, q.end)
        except NotImported:
            fail(f"no portrait was imported for {appid} {q.ref_date} (weanalysis portraits import)")
    else:
        result = compute(EmbeddedSource.of(store, appid), q)
    echo_json(portrait_document(result), pretty=pretty)

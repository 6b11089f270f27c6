"""``weanalysis serve``: the HTTP API (WeChat-compatible routes and our own)."""

from __future__ import annotations

import gc

import click

from weanalysis import logs
from weanalysis.api.collect_routes import CollectLimits
from weanalysis.auth.tokens import DEFAULT_TTL_S
from weanalysis.cli.common import listen_options, open_store


@click.command("serve")
@listen_options
@click.option(
    "--token-ttl",
    type=click.IntRange(1),
    default=DEFAULT_TTL_S,
    show_default=True,
    help="Seconds an access token stays valid.",
)
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    metavar="IP",
    help="A reverse proxy whose X-Forwarded-For is believed (repeatable; default: none).",
)
@click.option(
    "--collect-ip-rate",
    type=click.FloatRange(0),
    default=CollectLimits.ip_rate,
    show_default=True,
    help="Beacon (/collect) requests per second per client IP; 0: no limit.",
)
@click.option(
    "--collect-app-rate",
    type=click.FloatRange(0),
    default=CollectLimits.app_rate,
    show_default=True,
    help="Beacon (/collect) requests per second per app; 0: no limit.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option(
    "--log-format",
    type=click.Choice(logs.FORMATS),
    default="text",
    show_default=True,
    help="json: one JSON object a line (time, level, logger, message), for log shippers.",
)
@click.pass_context
def serve(
    ctx,
    host,
    port,
    token_ttl,
    trusted_proxies,
    collect_ip_rate,
    collect_app_rate,
    log_level,
    log_format,
) -> None:
    """Serve the WeChat-compatible API, the dashboard, /healthz and /metrics (Prometheus)."""
    import uvicorn

    from weanalysis.api.app import create_app

    log_config = logs.setup(log_level, log_format)
    store = open_store(ctx)
    limits = CollectLimits(
        ip_rate=collect_ip_rate, app_rate=collect_app_rate, trusted_proxies=tuple(trusted_proxies)
    )
    app = create_app(store, token_ttl=token_ttl, limits=limits)
    click.echo(f"serving {store.dir} on http://{host}:{port} (token TTL {token_ttl}s)", err=True)
    # Everything loaded so far (frameworks, tables) lives as long as the process: keep it out of
    # the cyclic collector, whose full passes over it otherwise stall requests for tens of ms.
    gc.collect()
    gc.freeze()
    # Per-request garbage is short-lived: collect it in fewer, still small, young passes.
    gc.set_threshold(20_000, 50, 50)
    # uvicorn's own access log prints query strings, which carry access tokens: ours does not.
    # uvicorn would also believe X-Forwarded-For from loopback peers by default: only the
    # proxies named with --trusted-proxy are believed, by our own code.
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=False,
        log_level=log_level,
        server_header=False,
        proxy_headers=False,
        log_config=log_config,
    )

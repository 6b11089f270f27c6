"""``weanalysis serve``: the HTTP API (WeChat-compatible routes and our own)."""

from __future__ import annotations

import gc

import click

from weanalysis import logs, settings
from weanalysis.api.collect_routes import CollectLimits
from weanalysis.cli.common import listen_options, open_store
from weanalysis.settings import help_text


@click.command("serve")
@listen_options
@click.option("--token-ttl", type=click.IntRange(1), default=None, help=help_text("token_ttl"))
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    metavar="IP",
    help=help_text("trusted_proxies"),
)
@click.option(
    "--collect-ip-rate", type=click.FloatRange(0), default=None, help=help_text("collect_ip_rate")
)
@click.option(
    "--collect-app-rate",
    type=click.FloatRange(0),
    default=None,
    help=help_text("collect_app_rate"),
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default=None,
    help=help_text("log_level"),
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
    """Serve the WeChat-compatible API, the dashboard, /healthz and /metrics (Prometheus).

    Every option also has an environment variable (see the README's settings); the other
    settings (limits, timeouts, the secret throttle) are environment variables only.
    """
    import uvicorn

    from weanalysis.api.app import create_app
    from weanalysis.api.timeouts import protocol_class

    host, port = settings.value("host", host), settings.value("port", port)
    token_ttl = settings.value("token_ttl", token_ttl)
    log_level = settings.value("log_level", log_level)
    limits = CollectLimits.from_settings(
        collect_ip_rate=collect_ip_rate,
        collect_app_rate=collect_app_rate,
        trusted_proxies=tuple(trusted_proxies),
    )
    http = protocol_class(settings.value("header_timeout"), settings.value("body_timeout"))
    log_config = logs.setup(log_level, log_format)
    store = open_store(ctx)
    app = create_app(store, token_ttl=token_ttl, limits=limits)
    mode = ", read-only" if store.catalog.read_only else ""
    click.echo(
        f"serving {store.dir} on http://{host}:{port} (token TTL {token_ttl}s{mode})", err=True
    )
    # Everything loaded so far (frameworks, tables) lives as long as the process: keep it out of
    # the cyclic collector, whose full passes over it otherwise stall requests for tens of ms.
    gc.collect()
    gc.freeze()
    # Per-request garbage is short-lived: collect it in fewer, still small, young passes.
    gc.set_threshold(20_000, 50, 50)
    # uvicorn's own access log prints query strings, which carry access tokens: ours does not.
    # uvicorn would also believe X-Forwarded-For/-Proto from loopback peers by default: only the
    # proxies named with --trusted-proxy are believed, by our own code.
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=http,
        access_log=False,
        log_level=log_level,
        server_header=False,
        proxy_headers=False,
        log_config=log_config,
    )

"""The aiohttp application: /api/v1 routes, wired to the App through a typed AppKey.

Middlewares, outermost first: timing (request latency for /metrics), web_origin (only our own
host names, no cross-site state changes: origin.py), json_errors (one JSON
error shape for everything under /api), authenticate (each view's access policy, deny by
default). The views live in one module per resource so this file does not grow with the API.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from daemon.api import accounts, health, media, openapi, photos
from daemon.api import index_control, uploads
from daemon.api import live, shares, users, webhooks
from daemon.api import albums, labels, people, places, views
from daemon.api import timeline, webapp
from daemon.api.access import authenticate
from daemon.api.errors import json_errors
from daemon.api.keys import APP_KEY, THUMB_SERVER
from daemon.api.limits import GuardedSite, Limits
from daemon.api.origin import KnownHosts, guard
from daemon.api.plain_http import SERVER_TLS, ca_certificate, make_plain_app
from daemon.api.proxies import parse_trusted_proxies, trusted_forwarding
from daemon.system.tls import ServerTls
from daemon.listeners import subscription
from daemon.api.thumbserver import ThumbServer
from daemon.api.compression import compress_json
from daemon.api.metrics import METRICS_KEY, Metrics, metrics_view, timing
from daemon.app import App

log = logging.getLogger(__name__)

API = "/api/v1"


def make_web_app(app: App) -> web.Application:
    cfg = app.config
    hosts = KnownHosts.from_config(cfg)
    proxies = parse_trusted_proxies(cfg["server.trusted_proxies"])  # behind a reverse proxy: proxies.py
    web_app = web.Application(middlewares=[*([trusted_forwarding(proxies)] if proxies else []), timing, guard(hosts),
                                           compress_json, json_errors, authenticate],
                              client_max_size=cfg["server.max_body_kib"] * 1024)
    web_app[APP_KEY] = app
    metrics = Metrics()
    web_app[METRICS_KEY] = metrics
    web_app.cleanup_ctx.append(subscription(app.stored, metrics.job_done))
    health.setup(web_app, API)
    accounts.setup_routes(web_app, API)
    photos.setup_routes(web_app, API)
    media.setup_routes(web_app, API)
    index_control.setup_routes(web_app, API); uploads.setup_routes(web_app, API)
    shares.setup_routes(web_app, API)
    live.setup_routes(web_app, API)
    webhooks.setup_routes(web_app, API)
    for collections in (albums, views, labels, people, places): collections.setup_routes(web_app, API)
    users.setup_routes(web_app, API)
    assert app.auth is not None
    web_app[THUMB_SERVER] = ThumbServer(web_app[media.THUMBNAILS], app.auth, limits=Limits.from_config(cfg),
                                          hosts=hosts)  # started by start_server
    openapi.setup_routes(web_app, API)
    web_app.router.add_get("/metrics", metrics_view(public_access=cfg["metrics.public"]))
    timeline.setup_routes(web_app, API)
    web_app.router.add_get("/ca.crt", ca_certificate)  # the local CA, to install on a device (plain_http.py)
    webapp.setup_routes(web_app, cfg["server.web_root"], cfg["server.thumbnail_port"])  # last: a catch-all
    return web_app


class WebServers:
    """The API server and the thumbnail server of one `shoebox serve`."""

    def __init__(self, runner: web.AppRunner, tls: ServerTls | None = None) -> None:
        self.runner = runner
        self.thumbs = runner.app[THUMB_SERVER]
        self.tls = tls  # None: plain HTTP (server.https = false)
        self.plain: web.AppRunner | None = None  # the plain-HTTP redirect port, with HTTPS
        self.plain_port: int | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    async def cleanup(self) -> None:
        await self.thumbs.stop()
        if self.plain is not None:
            await self.plain.cleanup()
        await self.runner.cleanup()


async def start_server(app: App, host: str, port: int, thumbnail_port: int = 0) -> WebServers:
    """Start the API on host:port and, unless thumbnail_port is 0, the thumbnail server. A
    thumbnail port that cannot be bound is logged and skipped: thumbnails are still served on
    the main port, so the library stays usable.

    With `server.https` (the default) both ports speak HTTPS (daemon.system.tls: the local CA's
    certificate, made at the first start and renewed while serving, or the user's own), and
    `server.http_port` answers plain HTTP: health, /ca.crt, and a redirect for the rest."""
    cfg = app.config
    tls: ServerTls | None = None
    if cfg["server.https"]:
        tls = ServerTls.from_config(cfg.data, cfg["server.tls_cert"], cfg["server.tls_key"], cfg["server.hostnames"])
        await asyncio.to_thread(tls.prepare)  # key generation on the first start: not on the loop
    context = tls.context if tls is not None else None
    web_app = make_web_app(app)
    web_app[SERVER_TLS] = tls
    runner = web.AppRunner(web_app, access_log=None, handle_signals=False)
    await runner.setup()
    limits = Limits.from_config(cfg)
    site = GuardedSite(runner, host, port, limits, handler_args={"access_log": None}, ssl_context=context)
    await site.start()
    servers = WebServers(runner, tls)
    if thumbnail_port:
        try:
            await servers.thumbs.start(host, thumbnail_port, ssl_context=context)
        except OSError as exc:
            log.error("the thumbnail server cannot listen on %s:%d (%s); thumbnails are served on port %d only",
                      host, thumbnail_port, exc.strerror or exc, port)
    if tls is not None and cfg["server.http_port"]:
        plain = web.AppRunner(make_plain_app(app, KnownHosts.from_config(cfg), site.port or port, tls, servers.thumbs),
                              access_log=None, handle_signals=False)
        await plain.setup()
        servers.plain = plain
        plain_site = GuardedSite(plain, host, cfg["server.http_port"], limits, handler_args={"access_log": None})
        try:
            await plain_site.start()
            servers.plain_port = plain_site.port
        except OSError as exc:  # HTTPS works without it: say so and carry on
            log.error("the plain-HTTP port cannot listen on %s:%d (%s); only https://…:%d answers",
                      host, cfg["server.http_port"], exc.strerror or exc, port)
    if tls is not None and tls.local is not None:
        app.spawn(tls.watch(), "tls-renewal")  # new addresses, expiry: renewed while serving
    return servers

"""The aiohttp application: /api/v1 routes, wired to the App through a typed AppKey.

Middlewares, outermost first: timing (request latency for /metrics), web_origin (only our own
host names, no cross-site state changes: origin.py), json_errors (one JSON
error shape for everything under /api), authenticate (each view's access policy, deny by
default). The views live in one module per resource so this file does not grow with the API.
"""

from __future__ import annotations

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
    web_app = web.Application(middlewares=[timing, guard(hosts), compress_json, json_errors, authenticate],
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
    webapp.setup_routes(web_app, cfg["server.web_root"], cfg["server.thumbnail_port"])  # last: a catch-all
    return web_app


class WebServers:
    """The API server and the thumbnail server of one `shoebox serve`."""

    def __init__(self, runner: web.AppRunner) -> None:
        self.runner = runner
        self.thumbs = runner.app[THUMB_SERVER]

    async def cleanup(self) -> None:
        await self.thumbs.stop()
        await self.runner.cleanup()


async def start_server(app: App, host: str, port: int, thumbnail_port: int = 0) -> WebServers:
    """Start the API on host:port and, unless thumbnail_port is 0, the thumbnail server. A
    thumbnail port that cannot be bound is logged and skipped: thumbnails are still served on
    the main port, so the library stays usable."""
    runner = web.AppRunner(make_web_app(app), access_log=None, handle_signals=False)
    await runner.setup()
    site = GuardedSite(runner, host, port, Limits.from_config(app.config), handler_args={"access_log": None})
    await site.start()
    servers = WebServers(runner)
    if thumbnail_port:
        try:
            await servers.thumbs.start(host, thumbnail_port)
        except OSError as exc:
            log.error("the thumbnail server cannot listen on %s:%d (%s); thumbnails are served on port %d only",
                      host, thumbnail_port, exc.strerror or exc, port)
    return servers

"""The aiohttp application: /api/v1 routes, wired to the App through a typed AppKey.

Middlewares, outermost first: timing (request latency for /metrics), json_errors (one JSON
error shape for everything under /api), authenticate (each view's access policy, deny by
default). The views live in one module per resource so this file does not grow with the API.
"""

from __future__ import annotations

import logging

from aiohttp import web

from daemon.api import accounts, health, media, openapi, photos
from daemon.api import index_control, uploads
from daemon.api import live, shares, webhooks
from daemon.api import albums, labels, people, views
from daemon.api.access import authenticate
from daemon.api.errors import json_errors
from daemon.api.keys import APP_KEY
from daemon.api.metrics import METRICS_KEY, Metrics, metrics_view, timing
from daemon.app import App

log = logging.getLogger(__name__)

API = "/api/v1"


def make_web_app(app: App) -> web.Application:
    cfg = app.config
    web_app = web.Application(middlewares=[timing, json_errors, authenticate],
                              client_max_size=cfg["server.max_body_kib"] * 1024)
    web_app[APP_KEY] = app
    metrics = Metrics()
    web_app[METRICS_KEY] = metrics
    app.listeners.append(metrics.job_done)
    health.setup(web_app, API)
    accounts.setup_routes(web_app, API)
    photos.setup_routes(web_app, API)
    media.setup_routes(web_app, API)
    index_control.setup_routes(web_app, API); uploads.setup_routes(web_app, API)
    shares.setup_routes(web_app, API)
    live.setup_routes(web_app, API)
    webhooks.setup_routes(web_app, API)
    for collections in (albums, views, labels, people): collections.setup_routes(web_app, API)
    openapi.setup_routes(web_app, API)
    web_app.router.add_get("/metrics", metrics_view(public_access=cfg["metrics.public"]))

    async def forget_listener(_: web.Application) -> None:
        if metrics.job_done in app.listeners:
            app.listeners.remove(metrics.job_done)

    web_app.on_cleanup.append(forget_listener)
    return web_app


async def start_server(app: App, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(make_web_app(app), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return runner

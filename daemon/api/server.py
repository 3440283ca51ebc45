"""The aiohttp application: /api/v1 routes, wired to the App through a typed AppKey.

This issue's surface is small (health and status); the views live in one module per resource
so the API can grow without this file growing with it.
"""

from __future__ import annotations

import logging

from aiohttp import web

from daemon.api import health
from daemon.api.keys import APP_KEY
from daemon.app import App

log = logging.getLogger(__name__)

API = "/api/v1"


@web.middleware
async def json_errors(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Every error under /api answers JSON {"error", "message", "details"}, never an HTML page."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400 or exc.content_type == "application/json":
            raise
        return web.json_response(
            {"error": exc.reason.lower().replace(" ", "_"), "message": exc.text or exc.reason, "details": None},
            status=exc.status, headers={k: v for k, v in exc.headers.items() if k.lower() != "content-type"})
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return web.json_response(
            {"error": "internal_error", "message": "internal error, see the daemon's log", "details": None},
            status=500)


def make_web_app(app: App) -> web.Application:
    web_app = web.Application(middlewares=[json_errors], client_max_size=1 << 20)
    web_app[APP_KEY] = app
    health.setup(web_app, API)
    return web_app


async def start_server(app: App, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(make_web_app(app), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return runner

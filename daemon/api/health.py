"""/api/v1/health (liveness, no authentication) and /api/v1/status (what the library is doing)."""

from __future__ import annotations

from aiohttp import web

from daemon import __version__
from daemon.api.keys import APP_KEY


async def health(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ok = app.db is not None
    return web.json_response({"status": "ok" if ok else "starting", "version": __version__},
                             status=200 if ok else 503)


async def status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[APP_KEY].status())


def setup(web_app: web.Application, prefix: str) -> None:
    web_app.router.add_get(f"{prefix}/health", health)
    web_app.router.add_get(f"{prefix}/status", status)

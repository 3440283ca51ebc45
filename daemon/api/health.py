"""/api/v1/health (liveness, no authentication) and /api/v1/status (what the library is doing)."""

from __future__ import annotations

from typing import Any, Union

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r503
from pydantic import BaseModel, Field

from daemon import __version__
from daemon.api.access import principal, public
from daemon.api.errors import validated
from daemon.api.keys import APP_KEY, SERVER_TLS, THUMB_SERVER
from daemon.auth.roles import Scope
from daemon.store.status import for_non_admin


class Health(BaseModel):
    status: str
    version: str
    thumbnail_port: int = Field(description="the thumbnail server's port on this host; 0 when it is off")


@public
@validated
async def health(request: web.Request) -> Union[r200[Health], r503[Health]]:
    """Liveness: 200 once the store is open. Needs no credentials (for monitors and Docker).

    Tags: operations
    """
    app = request.app[APP_KEY]
    ok = app.db is not None
    thumbs = request.app[THUMB_SERVER]
    return web.json_response({"status": "ok" if ok else "starting", "version": __version__,
                              "thumbnail_port": thumbs.port or 0},
                             status=200 if ok else 503)


@validated
async def status(request: web.Request) -> r200[dict[str, Any]]:
    """Counts, queue, the last scan and whether indexing runs. Admins also get the library's path,
    the files in error and offline, event transports, models and disks; other users only counts
    and progress (no paths, nothing about other parties).

    Tags: operations
    """
    body = await request.app[APP_KEY].status()
    body["thumbnail_server"] = request.app[THUMB_SERVER].status()
    tls = request.app.get(SERVER_TLS)  # set by start_server (daemon/system/tls.py)
    body["https"] = dict(tls.summary) if tls is not None else {"enabled": False}
    if not principal(request).can(Scope.ADMIN):  # a user, a viewer, or an admin's token without admin scope
        body = for_non_admin(body)
    return web.json_response(body)


def setup(web_app: web.Application, prefix: str) -> None:
    web_app.router.add_get(f"{prefix}/health", health)
    web_app.router.add_get(f"{prefix}/status", status)

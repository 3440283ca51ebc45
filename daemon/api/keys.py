"""Typed keys for what the aiohttp application carries (aiohttp's web.AppKey)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from daemon.api.thumbserver import ThumbServer
    from daemon.app import App
    from daemon.system.tls import ServerTls

APP_KEY: web.AppKey["App"] = web.AppKey("shoebox_app")
THUMB_SERVER: web.AppKey["ThumbServer"] = web.AppKey("thumb_server")
SERVER_TLS: web.AppKey["ServerTls | None"] = web.AppKey("shoebox_server_tls")  # None: HTTPS off

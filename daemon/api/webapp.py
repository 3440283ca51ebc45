"""The web app: web/dist served at `/`, with the caching and security headers a PWA needs.

Why here and not behind nginx: the appliance is one process, and the rules that matter for an
installable app are few and easy to get wrong — hashed assets (`/assets/*`) are immutable
forever, while `index.html`, the service worker and the manifest must be revalidated on every
load or a phone keeps an old app for weeks. Client-side routes (`/albums/x`, `/search?q=`) have
no file; they get `index.html` so a bookmarked or reloaded URL opens the app at that view.

Every answer of the app carries a Content-Security-Policy without inline script (the build
emits none), `frame-ancestors 'none'` against click-jacking and `Referrer-Policy: same-origin`
so photo ids in URLs do not leak to other sites. Images may also come from the thumbnail
server, which is the same host on another port (another origin), so the policy names it.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path

from aiohttp import web

from daemon.api.access import public

log = logging.getLogger(__name__)

WEB_ROOT: web.AppKey[Path] = web.AppKey("shoebox_web_root", Path)
THUMB_PORT: web.AppKey[int] = web.AppKey("shoebox_web_thumb_port", int)

#: Files that must never be cached without revalidation: they name the hashed assets.
ENTRY_FILES = frozenset({"index.html", "sw.js", "manifest.webmanifest", "registerSW.js"})
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"
#: Paths the app never answers: they belong to the API (which has its own JSON 404s).
RESERVED_PREFIXES = ("/api/", "/metrics")


def content_security_policy(host: str | None, thumb_port: int, secure: bool) -> str:
    """The policy for app pages. `host` is the Host header's name, so that the thumbnail server
    (same host, other port) is allowed for images and nothing else is."""
    thumbs = ""
    if thumb_port and host:
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        scheme = "https" if secure else "http"
        thumbs = f" {scheme}://{name}:{thumb_port}"
    return ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data: blob:{thumbs}; media-src 'self' blob:; "
            f"connect-src 'self' ws: wss:{thumbs}; worker-src 'self' blob:; font-src 'self' data:; "
            "manifest-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
            "frame-ancestors 'none'")


def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Content-Security-Policy"] = content_security_policy(
        request.host, request.app[THUMB_PORT], request.secure)
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"


def _inside(root: Path, rel: str) -> Path | None:
    """The file `rel` names below `root`, or None: no `..`, no link out of the build folder."""
    if "\x00" in rel:
        return None
    try:
        path = (root / rel.lstrip("/")).resolve()
    except (OSError, RuntimeError):
        return None
    if path != root and root not in path.parents:
        return None
    return path if path.is_file() else None


def _not_built_page(root: Path) -> web.Response:
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shoebox</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto; line-height: 1.5">
<h1>Shoebox is running</h1>
<p>The API answers at <a href="/api/v1/health">/api/v1/health</a>, but the web app has not been
built: there is no <code>{html.escape(str(root))}/index.html</code>.</p>
<p>Build it from the source folder with <code>make web</code> (it needs Node.js 18 or newer and
npm: <code>apt install nodejs npm</code>), or start Shoebox with <code>make run</code>, which
builds it for you.</p>
</body></html>
"""
    return web.Response(text=body, content_type="text/html", status=503,
                        headers={"Cache-Control": NO_CACHE, "Retry-After": "3600"})


@public
async def app_file(request: web.Request) -> web.StreamResponse:
    """A file of the built app, or index.html for a client-side route."""
    path = request.path
    if path.startswith(RESERVED_PREFIXES):
        raise web.HTTPNotFound()
    root = request.app[WEB_ROOT]
    index = root / "index.html"
    if not index.is_file():
        response: web.StreamResponse = _not_built_page(root)
        _security_headers(request, response)
        return response
    target = _inside(root, path) if path not in ("", "/") else None
    if target is None:
        last = path.rsplit("/", 1)[-1]
        if "." in last and not path.startswith("/s/"):
            raise web.HTTPNotFound()  # a missing asset is a 404, not the app shell
        target = index
    response = web.FileResponse(target)
    name = target.name
    if target.parent.name == "assets" and target.parent.parent == root:
        response.headers["Cache-Control"] = IMMUTABLE
    elif name in ENTRY_FILES or name.endswith(".html"):
        response.headers["Cache-Control"] = NO_CACHE
    else:
        response.headers["Cache-Control"] = "public, max-age=86400"
    if name == "sw.js":
        response.headers["Service-Worker-Allowed"] = "/"
    if name.endswith(".webmanifest"):
        response.content_type = "application/manifest+json"
    _security_headers(request, response)
    return response


def setup_routes(web_app: web.Application, web_root: Path, thumbnail_port: int) -> None:
    """Register last: the catch-all must not shadow any API route."""
    web_app[WEB_ROOT] = web_root.resolve()
    web_app[THUMB_PORT] = thumbnail_port
    web_app.router.add_get("/{tail:.*}", app_file, allow_head=True)
    if not (web_root / "index.html").is_file():
        log.warning("the web app is not built (%s/index.html is missing): `make web` builds it; "
                    "the API works without it", web_root)

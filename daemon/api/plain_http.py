"""The plain-HTTP port next to HTTPS: `/api/v1/health` for monitors, `/ca.crt` for a device that
does not trust the local CA yet, and a 308 redirect to the HTTPS URL for everything else.

Why a port of its own: a phone that types `shoebox.local:8419` (or follows an old bookmark)
must land on the HTTPS app, and it cannot download the CA certificate over an HTTPS connection
it does not trust yet. Nothing else answers here: no login, no photo, no token ever travels over
it. 308 (not 301) keeps the method and body of a script's POST, so it fails loudly at the HTTPS
port instead of silently turning into a GET. The Host check of the HTTPS port applies here too,
so the redirect never points at a name that is not ours.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from daemon.api import health
from daemon.api.access import public
from daemon.api.errors import error_response
from daemon.api.keys import APP_KEY, SERVER_TLS, THUMB_SERVER
from daemon.api.origin import KnownHosts, guard, split_host
from daemon.app import App
from daemon.system.tls import ServerTls

HTTPS_PORT: web.AppKey[int] = web.AppKey("shoebox_https_port", int)
CA_CONTENT_TYPE = "application/x-x509-ca-cert"


@public
async def ca_certificate(request: web.Request) -> web.StreamResponse:
    """The local CA's certificate (PEM), to install on a device: README, HTTPS on your network.
    Public on both ports: it is what a device needs before it can trust anything else."""
    tls = request.app.get(SERVER_TLS)
    path = tls.ca_certificate if tls is not None else None
    if path is None:
        return error_response(404, "no_local_ca", "this server does not use Shoebox's local certificate "
                              "authority (HTTPS is off, or server.tls_cert names a certificate of your own)")
    body = await asyncio.to_thread(path.read_bytes)
    return web.Response(body=body, headers={"Content-Type": CA_CONTENT_TYPE, "Cache-Control": "no-cache",
                                            "Content-Disposition": 'attachment; filename="shoebox-ca.crt"',
                                            "X-Content-Type-Options": "nosniff"})


def https_url(request: web.Request, https_port: int) -> str:
    """The same path on the HTTPS port, under the name the client used."""
    host = request.headers.get("Host")
    if host:
        name, _ = split_host(host)
    else:  # HTTP/1.0 without Host: the address the client connected to
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        name = str(sockname[0]) if sockname else "localhost"
    if ":" in name:
        name = f"[{name}]"
    port = "" if https_port == 443 else f":{https_port}"
    return f"https://{name}{port}{request.rel_url.raw_path_qs}"


@public
async def to_https(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect(https_url(request, request.app[HTTPS_PORT]))


def make_plain_app(app: App, hosts: KnownHosts, https_port: int, tls: ServerTls, thumbs: object) -> web.Application:
    web_app = web.Application(middlewares=[guard(hosts)], client_max_size=64 * 1024)
    web_app[APP_KEY] = app
    web_app[THUMB_SERVER] = thumbs  # type: ignore[assignment]  # health reports its port
    web_app[SERVER_TLS] = tls
    web_app[HTTPS_PORT] = https_port
    web_app.router.add_get("/api/v1/health", health.health)
    web_app.router.add_get("/ca.crt", ca_certificate)
    web_app.router.add_route("*", "/{tail:.*}", to_https)
    return web_app

"""Behind a reverse proxy: believe `X-Forwarded-For` and `X-Forwarded-Proto` from the proxies
named in `[server] trusted_proxies`, and from nobody else.

Why: a proxy (Caddy, nginx, Traefik) that terminates HTTPS connects to Shoebox itself, so every
request seems to come from the proxy's address over plain HTTP. The login backoff and the share
links' unlock limits count by the client's address, and secure cookies and the app's content
security policy depend on the scheme: both must be the real client's. But anyone can send those
headers, so they are read only when the connection comes from a configured proxy; then the
client is the right-most address in X-Forwarded-For that is not itself a trusted proxy (what
each proxy in a chain appends), and the scheme the last X-Forwarded-Proto value.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from aiohttp import web

from daemon.config import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(text: str) -> list[Network]:
    """"10.0.0.5, 192.168.1.0/24, ::1" → networks. A bad entry is a ConfigError naming it."""
    networks: list[Network] = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(f"invalid value for server.trusted_proxies: {part!r} is not an IP address or a "
                              "network (CIDR, e.g. 192.168.1.0/24); separate several with commas") from None
    return networks


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(ip: Any, networks: list[Network]) -> bool:
    return ip is not None and any(ip.version == n.version and ip in n for n in networks)


def forwarded_client(x_forwarded_for: list[str], networks: list[Network]) -> str | None:
    """The client a chain of trusted proxies names: right to left, the first address that is not
    a trusted proxy (None when the header holds nothing usable)."""
    hops = [h.strip() for value in x_forwarded_for for h in value.split(",") if h.strip()]
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:
            return None  # garbage in the chain: believe nothing beyond it
        if not _trusted(ip, networks):
            return str(ip)
    return None


def trusted_forwarding(networks: list[Network]) -> Any:
    """The middleware (outermost): a request from a trusted proxy takes the client address and
    scheme that proxy forwarded."""

    @web.middleware
    async def from_proxy(request: web.Request, handler):  # type: ignore[no-untyped-def]
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer and _trusted(_ip(str(peer[0])), networks):
            changes: dict[str, str] = {}
            client = forwarded_client(request.headers.getall("X-Forwarded-For", []), networks)
            if client is not None:
                changes["remote"] = client
            protos = [p.strip().lower() for v in request.headers.getall("X-Forwarded-Proto", []) for p in v.split(",")]
            if protos and protos[-1] in ("http", "https"):
                changes["scheme"] = protos[-1]
            if changes:
                request = request.clone(**changes)
        return await handler(request)

    return from_proxy

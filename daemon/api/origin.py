"""Web-origin defences: answer only for our own host names, and refuse cross-site state changes.

Why. Every web page that any browser in the house opens can make that browser send requests to
the daemon, which sits on the same network:

- DNS rebinding: a page at attacker.example re-points its own name at the daemon's address, and
  its scripts then read the daemon's answers as same-origin. The daemon sees `Host:
  attacker.example`, so it answers only for names it knows (`KnownHosts`): `localhost`, the
  machine's host name and `<hostname>.local` (the zeroconf name), IP literals of its own
  addresses (loopback, the address the client connected to, every interface address), and the
  names in `server.hostnames` (a reverse proxy's public name; `*` turns the check off). Anything
  else is refused with 421 (Misdirected Request). Both ports check it.
- Cross-site requests (CSRF): a page can POST a form or a `no-cors` fetch to the API. Nothing
  that authenticates is ambient except the refresh cookie (SameSite=Strict), but first-run setup
  and login need no credentials at all. So every state-changing request under /api/ (POST,
  PUT, PATCH, DELETE) and every WebSocket upgrade is refused (403) when the browser says it comes
  from another site (`Origin` not this server, `Origin: null`, or `Sec-Fetch-Site: cross-site` /
  `same-site`), and one that carries a body a web form can send (any Content-Type other than
  JSON) must show it was made by a program: an `Authorization` header or `X-Shoebox-Request: 1`,
  which no page can add without a CORS preflight that the daemon never grants. Scripts and curl
  (no Origin, JSON or a Bearer token) are unaffected.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from typing import Any, Iterable

import ifaddr
from aiohttp import web
from yarl import URL

from daemon.api.access import policy_of
from daemon.api.errors import error_response
from daemon.config import Config

PROGRAM_HEADER = "X-Shoebox-Request"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ADDRESS_REFRESH = 10.0  # seconds between two looks at the interface addresses (only on a miss)
MAX_REMEMBERED = 256  # Host values remembered as ours


def split_host(value: str) -> tuple[str, int | None]:
    """`name:port`, `[v6]:port`, `name` → (lower-case name without brackets or a final dot, port)."""
    value = value.strip()
    port: int | None = None
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    else:
        name, sep, tail = value.rpartition(":")
        if sep and tail.isdigit() and ":" not in name:
            port = int(tail)
        else:
            name = value
    return name.lower().rstrip("."), port


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def machine_names() -> set[str]:
    """This machine's names: `localhost`, its host name, the first label of it, `<label>.local`."""
    host = socket.gethostname().lower().rstrip(".")
    label = host.split(".")[0]
    names = {"localhost", "localhost.localdomain", host, label, f"{label}.local"}
    return {n for n in names if n}


def interface_addresses() -> set[str]:
    """Every address of every interface (loopback, link-local and IPv6 included)."""
    found: set[str] = set()
    for adapter in ifaddr.get_adapters():
        for entry in adapter.ips:
            raw = entry.ip[0] if isinstance(entry.ip, tuple) else entry.ip
            ip = _ip(str(raw))
            if ip is not None:
                found.add(str(ip))
    return found


class KnownHosts:
    """The host names (and addresses) this daemon answers for."""

    def __init__(self, names: Iterable[str], configured: Iterable[str] = (), any_host: bool = False) -> None:
        self.configured = {split_host(n)[0] for n in configured if n.strip()}
        self.names = {split_host(n)[0] for n in names if n.strip()} | self.configured
        self.any_host = any_host
        self._addresses: set[str] = set()
        self._addresses_at = float("-inf")
        self._ok: set[str] = set()  # Host header values already found to be ours
        self.origins: dict[tuple[str, str | None], bool] = {}  # (Origin, Host) → same origin?

    @classmethod
    def from_config(cls, cfg: Config) -> "KnownHosts":
        configured = [n.strip() for n in str(cfg["server.hostnames"]).split(",") if n.strip()]
        names = machine_names()
        listen = str(cfg["server.host"]).strip()
        if listen and _ip(listen) is None:
            names.add(listen)  # listening on a name: that name is ours too
        return cls(names, [n for n in configured if n != "*"], any_host="*" in configured)

    def allows(self, host: str | None, local_address: Any = None) -> bool:
        """Is `host` (a Host header's value; None when the request had none) one of ours?
        `local_address` is the address the client connected to (the socket's own name), or a
        function that gives it (looked up only when the Host is an address not seen before)."""
        if host is None or self.any_host or host in self._ok:
            return True  # no Host: not a browser (every browser sends one)
        name, _ = split_host(host)
        ok = name in self.names or self._our_address(name, local_address)
        if ok:
            if len(self._ok) >= MAX_REMEMBERED:
                self._ok.clear()
            self._ok.add(host)
        return ok

    def _our_address(self, name: str, local_address: Any) -> bool:
        ip = _ip(name)
        if ip is None:
            return False
        if ip.is_loopback:
            return True
        if callable(local_address):
            local_address = local_address()
        local = local_address[0] if isinstance(local_address, (tuple, list)) and local_address else local_address
        if local is not None and _ip(str(local)) == ip:
            return True
        if str(ip) in self._addresses:
            return True
        now = time.monotonic()
        if now - self._addresses_at >= ADDRESS_REFRESH:  # a new DHCP lease: look again, not too often
            self._addresses_at = now
            self._addresses = interface_addresses()
        return str(ip) in self._addresses

    def refusal(self, host: str) -> str:
        return (f"this server does not answer for the host name {split_host(host)[0]!r} (DNS rebinding "
                "protection); use its own name or address, or add the name to server.hostnames")


def same_origin(origin: str, host: str | None, hosts: KnownHosts) -> bool:
    """Does the browser's `Origin` name this server (the Host it asked, or a configured name)?
    Remembered per (Origin, Host): a page sends the same pair on every request."""
    key = (origin, host)
    known = hosts.origins.get(key)
    if known is None:
        known = _same_origin(origin, host, hosts)
        if len(hosts.origins) >= MAX_REMEMBERED:
            hosts.origins.clear()
        hosts.origins[key] = known
    return known


def _same_origin(origin: str, host: str | None, hosts: KnownHosts) -> bool:
    try:
        url = URL(origin)
    except ValueError:
        return False
    if not url.host or url.scheme not in ("http", "https"):
        return False
    name = url.host.lower().rstrip(".")
    if name in hosts.configured:
        return True  # behind a reverse proxy that sends its own Host
    if host is None:
        return False
    host_name, host_port = split_host(host)
    return name == host_name and (host_port is None or host_port == url.port)


def cross_site(request: web.Request, hosts: KnownHosts) -> str | None:
    """Why a browser's request comes from another site, or None."""
    origin = request.headers.get("Origin")
    if origin is not None:
        if origin.strip().lower() == "null":
            return "requests from an opaque origin (Origin: null) are refused"
        if not same_origin(origin.strip(), request.headers.get("Host"), hosts):
            return f"cross-site requests are refused (Origin {origin[:100]!r} is not this server)"
        return None
    fetch_site = request.headers.get("Sec-Fetch-Site", "").lower()
    if fetch_site in ("cross-site", "same-site"):
        return f"cross-site requests are refused (Sec-Fetch-Site: {fetch_site})"
    return None


def made_by_a_program(request: web.Request) -> bool:
    """A body no HTML form or simple fetch can send: JSON, or a header only a program (or a page
    allowed by CORS, which is none) can add. No Content-Type at all means no form body either.
    A route that only a Bearer token opens is left to the access check: without the header it
    answers 401 anyway, and with it the request was made by a program."""
    content_type = request.headers.get("Content-Type")
    if content_type is None:
        return True
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json")):
        return True
    match = request.match_info
    if match.http_exception is None:
        policy = policy_of(match.handler)
        if policy.scope is not None and not policy.url_token:
            return True
    return "Authorization" in request.headers or PROGRAM_HEADER in request.headers


def guard(hosts: KnownHosts) -> Any:
    """The middleware: unknown Host → 421; cross-site state change or WebSocket → 403."""

    @web.middleware
    async def web_origin(request: web.Request, handler):  # type: ignore[no-untyped-def]
        host = request.headers.get("Host")
        if not hosts.allows(host, lambda: request.transport.get_extra_info("sockname") if request.transport else None):
            assert host is not None
            return error_response(421, "unknown_host", hosts.refusal(host))
        if request.path.startswith("/api/"):
            unsafe = request.method in UNSAFE_METHODS
            if unsafe or request.headers.get("Upgrade", "").lower() == "websocket":
                why = cross_site(request, hosts)
                if why is not None:
                    return error_response(403, "cross_site_request", why)
            if unsafe and not made_by_a_program(request):
                return error_response(
                    403, "cross_site_request",
                    f"a {request.method} with Content-Type {request.headers.get('Content-Type', '')[:60]!r} could "
                    f"come from another site's form: send JSON (Content-Type: application/json), or add "
                    f"`Authorization: Bearer <token>` or `{PROGRAM_HEADER}: 1`")
        return await handler(request)

    return web_origin

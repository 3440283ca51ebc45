"""Bounded work per connection on the API port: connection limits and read timeouts.

Why: a photo appliance is reachable by every device in the house. Without limits one client can
hold every connection the daemon is willing to keep (others are then locked out), or keep
connections busy forever by sending a request one byte at a time (slow-loris). aiohttp's own
`keepalive_timeout` only closes an idle connection; nothing bounds how long the headers or the
body of a request may take to arrive, and aiohttp has no per-address connection limit. So the
API port runs aiohttp's RequestHandler with a thin subclass (`GuardedHandler`) that

- admits a connection only while its address (an IPv6 client counts by its /64 network, because
  it can use any address in it) holds fewer than `max_connections_per_address` and the port
  fewer than `max_connections`; a refused connection gets a 503 in the API's JSON shape, closed;
- closes a connection whose request headers are not complete `header_timeout` seconds after
  their first byte (408), and one that sends no body bytes for `body_timeout` seconds while a
  request body is due (the time the server itself stops reading, because a view is busy, does
  not count);
- leaves upgraded connections (the live WebSocket) alone: live.py has its own limits.

The thumbnail server (thumbserver.py) uses the same `ConnectionLimiter` and `Limits`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import ssl
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from daemon.config import Config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """The connection limits and timeouts of both ports (settings `server.*`)."""

    max_connections: int = 512  # per port
    max_connections_per_address: int = 64  # per port and client address (IPv6: per /64)
    header_timeout: float = 10.0  # a request's headers must arrive within this, from their first byte
    body_timeout: float = 30.0  # longest pause while a request body is being received
    idle_timeout: float = 60.0  # an idle keep-alive connection is closed after this

    @classmethod
    def from_config(cls, cfg: Config) -> "Limits":
        return cls(max_connections=cfg["server.max_connections"],
                   max_connections_per_address=cfg["server.max_connections_per_address"],
                   header_timeout=cfg["server.header_timeout"], body_timeout=cfg["server.body_timeout"],
                   idle_timeout=cfg["server.idle_timeout"])


def client_key(peer: Any) -> str:
    """What the per-address limit counts: the IPv4 address, or the /64 network of an IPv6 one
    (one host usually has a whole /64 to pick addresses from). IPv4-mapped IPv6 counts as IPv4."""
    host = peer[0] if isinstance(peer, (tuple, list)) and peer else str(peer or "?")
    try:
        ip = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return str(host)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        if not ip.is_loopback:
            return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class ConnectionLimiter:
    """Counts open connections in total and per client; event-loop only (no locking needed)."""

    def __init__(self, total: int, per_address: int) -> None:
        self.total = total
        self.per_address = per_address
        self.open = 0
        self.by_address: dict[str, int] = {}
        self.refused = 0

    def admit(self, key: str) -> str | None:
        """Take a slot for `key`; None when admitted, else why not (for the 503's message)."""
        held = self.by_address.get(key, 0)
        if held >= self.per_address:
            self.refused += 1
            return (f"this address already has {held} connections open (server.max_connections_per_address); "
                    "close some and try again")
        if self.open >= self.total:
            self.refused += 1
            return f"the server has {self.open} connections open (server.max_connections); try again shortly"
        self.by_address[key] = held + 1
        self.open += 1
        return None

    def release(self, key: str) -> None:
        held = self.by_address.get(key, 0)
        if held <= 1:
            self.by_address.pop(key, None)
        else:
            self.by_address[key] = held - 1
        self.open = max(0, self.open - 1)


def raw_error(status: int, reason: str, code: str, message: str, extra: str = "") -> bytes:
    """A complete HTTP/1.1 answer in the API's JSON error shape that closes the connection, for
    the places that answer before (or instead of) any request handler."""
    body = json.dumps({"error": code, "message": message, "details": None}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n").encode("latin-1") + body


class GuardedHandler(RequestHandler):
    """aiohttp's RequestHandler with the connection limit and the header/body read timeouts.

    It reads three of RequestHandler's internals, all set in data_received before any request
    task runs: `_request_count` (grows when a request's headers are complete), `_messages` (the
    newest request and its body stream) and `_upgraded`/`_payload_parser` (a WebSocket). The
    tests in tests/security/test_connection_limits.py fail if a new aiohttp changes them.
    """

    __slots__ = ("_limiter", "_limits", "_key", "_admitted", "_timer", "_watch", "_deadline", "_body")

    def __init__(self, manager: web.Server, *, limiter: ConnectionLimiter, limits: Limits, **kwargs: Any) -> None:
        super().__init__(manager, keepalive_timeout=limits.idle_timeout, **kwargs)
        self._limiter = limiter
        self._limits = limits
        self._key = "?"
        self._admitted = False
        self._timer: asyncio.TimerHandle | None = None
        self._watch: str | None = None  # "header" or "body" while a timeout runs
        self._deadline = 0.0
        self._body: Any = None  # the body stream of the newest request while it is incomplete

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._key = client_key(transport.get_extra_info("peername"))
        refusal = self._limiter.admit(self._key)
        super().connection_made(transport)
        if refusal is not None:
            assert isinstance(transport, asyncio.Transport)
            transport.write(raw_error(503, "Service Unavailable", "too_many_connections", refusal,
                                      "Retry-After: 5\r\n"))
            self.force_close()
            return
        self._admitted = True

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._admitted:
            self._admitted = False
            self._limiter.release(self._key)
        self._stop_watch()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        count = self._request_count
        super().data_received(data)
        if not data or not self._admitted:
            return
        if self._upgraded or self._payload_parser is not None:
            self._stop_watch()  # a WebSocket: its own rules apply
            return
        if self._request_count != count and self._messages:
            self._body = self._messages[-1][1]  # the newest request's body stream (EMPTY_PAYLOAD: none)
        if self._body is not None:
            if not self._body.is_eof():
                self._expect("body", self._limits.body_timeout)
                return
            self._body = None
            self._stop_watch()  # the request has fully arrived
            return
        if self._request_count == count:
            self._expect("header", self._limits.header_timeout)

    # -- the one timer ---------------------------------------------------------------------------

    def _expect(self, what: str, seconds: float) -> None:
        """Headers: a fixed deadline from their first byte (more bytes do not extend it).
        Body: a deadline pushed back by every chunk (a pause, not the whole upload, is limited)."""
        now = self._loop.time()
        if what == "header" and self._watch == "header":
            return
        self._watch = what
        self._deadline = now + seconds
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._timed_out)

    def _stop_watch(self) -> None:
        self._watch = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        what = self._watch
        if what is None or self.transport is None:
            return
        now = self._loop.time()
        if what == "body" and (self._reading_paused or self._buffer_paused):
            self._deadline = now + self._limits.body_timeout  # we stopped reading: not the client's pause
        if self._deadline > now:  # not yet: more body bytes came, or we paused
            self._timer = self._loop.call_at(self._deadline, self._timed_out)
            return
        self._watch = None
        if what == "header":
            log.info("api: %s sent no complete request headers within %g s; closed", self._key,
                     self._limits.header_timeout)
            if not self._request_in_progress and not self._messages:  # nothing else is writing
                self.transport.write(raw_error(408, "Request Timeout", "timeout",
                                               f"the request headers did not arrive within "
                                               f"{self._limits.header_timeout:g} s"))
        else:
            log.info("api: %s sent no request body bytes for %g s; closed", self._key, self._limits.body_timeout)
        self.force_close()


class GuardedSite(web.BaseSite):
    """A TCP listener for an AppRunner whose connections are GuardedHandlers (web.TCPSite with
    another protocol factory; aiohttp has no option for one)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, limits: Limits,
                 handler_args: dict[str, Any] | None = None, backlog: int = 1024,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(runner, backlog=backlog, ssl_context=ssl_context)
        self._host, self._port = host, port
        self.limits = limits
        self.limiter = ConnectionLimiter(limits.max_connections, limits.max_connections_per_address)
        self._handler_args = handler_args or {}
        self.port: int | None = None

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self._host}:{self.port or self._port}"

    def _factory(self) -> Callable[[], GuardedHandler]:
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        return lambda: GuardedHandler(server, loop=loop, limiter=self.limiter, limits=self.limits,
                                      **self._handler_args)

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        # TLS: a handshake must finish within header_timeout too (the connection limits count a
        # connection only once it is made, i.e. after its handshake)
        tls = {"ssl": self._ssl_context, "ssl_handshake_timeout": self.limits.header_timeout} if self._ssl_context else {}
        self._server = await loop.create_server(self._factory(), self._host, self._port, backlog=self._backlog,
                                                reuse_address=True, **tls)
        self.port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port

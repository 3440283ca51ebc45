"""The thumbnail server: a lean HTTP/1.1 server for `GET /api/v1/t/<key>/<size>` on its own port.

Why it exists: a photo grid is dozens of thumbnail requests per screen, and aiohttp spends most
of its time per request in its request/response objects and middlewares, not in sending bytes.
Measured on the development machine (2 cores, wrk -t1 -c32 on loopback, 43 KB JPEGs): an
aiohttp view answering from memory 27,800 requests/s; an asyncio protocol answering the same
bytes 61,000-67,000; nginx (1 worker, sendfile) 68,000-78,000. Thumbnails only need a tiny part
of HTTP, so they get their own listener in the same process and event loop, and the browser gets
more parallel connections for images (a second origin) as a bonus. The main port still answers
the same URLs (compatibility, reverse proxies with one upstream).

What it speaks: HTTP/1.0 and 1.1, GET and HEAD, keep-alive, pipelining (answers in order),
If-None-Match (304). Thumbnails in the memory cache are written from it; bigger ones go out with
sendfile. Parsing is httptools (llhttp, the parser of Node.js and uvicorn), not
hand-written. Everything else gets the API's JSON error shape and, when the stream cannot be
trusted any more, a closed connection.

Bounded work per connection: a client may pipeline any number of requests, but the server takes
the next one off the socket only while the answers it holds for that connection (written but not
yet read by the client, ready, or still being made, counted at their largest possible size) stay
under MAX_HELD bytes; otherwise it stops reading (transport.pause_reading) until the client reads
(resume_writing). Requests are cut at their blank line before they reach the parser, so one
256 KiB read of pipelined requests cannot turn into thousands of answers at once. Connections are
limited in total and per client address (daemon/api/limits.py), and a request must name one of
the daemon's own hosts (daemon/api/origin.py: DNS rebinding).

Access is the main port's: a thumbnail token or thumbnails-only app token in `?t=`, or any token
with the thumbnails permission as `Authorization: Bearer`. The first request with a token is
checked exactly as the API does (signature, expiry, session or app token in the database); the
answer is then remembered for GRANT_TTL seconds so the hot path does no database work. A logout
or revocation made through the daemon drops the remembered answers at once (AuthService.revision);
one made by another process (the `shoebox users` command) takes effect within GRANT_TTL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
import time
from collections import deque
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httptools

from daemon.api.errors import ApiError
from daemon.api.limits import ConnectionLimiter, Limits, client_key, raw_error
from daemon.api.origin import KnownHosts, machine_names
from daemon.api.thumbnails import Thumb, ThumbnailRequestError, ThumbnailService, check_request
from daemon.auth.errors import AuthError
from daemon.auth.roles import Principal
from daemon.auth.service import AuthService

log = logging.getLogger(__name__)

PATH = re.compile(r"^/api/v1/t/([^/]+)/([^/]+)$")
IMMUTABLE = b"private, max-age=31536000, immutable"
GRANT_TTL = 5.0
MAX_GRANTS = 4096
MAX_URL = 4096
MAX_HEADER_BYTES = 8192
MAX_HEADERS = 64
MAX_PIPELINE = 16  # answers waiting per connection before we stop reading from it
MAX_HELD = 256 * 1024  # answer bytes held per connection before we stop reading from it
WRITE_HIGH_WATER = 64 * 1024  # the transport's buffer above which it asks us to pause
REASONS = {200: b"OK", 304: b"Not Modified", 400: b"Bad Request", 401: b"Unauthorized", 403: b"Forbidden",
           404: b"Not Found", 405: b"Method Not Allowed", 421: b"Misdirected Request", 408: b"Request Timeout", 414: b"URI Too Long",
           431: b"Request Header Fields Too Large", 500: b"Internal Server Error", 503: b"Service Unavailable"}


@dataclass(slots=True)
class _Grant:
    principal: Principal
    until: float  # time.monotonic() after which the token is checked again
    expires: float | None  # the token's own expiry (epoch seconds)
    revision: int


class Grants:
    """Tokens recently found good for thumbnails, remembered for GRANT_TTL seconds."""

    def __init__(self, auth: AuthService, ttl: float = GRANT_TTL) -> None:
        self.auth = auth
        self.ttl = ttl
        self._grants: dict[tuple[str, bool], _Grant] = {}

    def valid(self, token: str, in_url: bool) -> bool:
        grant = self._grants.get((token, in_url))
        if grant is None:
            return False
        if (grant.revision != self.auth.revision or grant.until < time.monotonic()
                or (grant.expires is not None and grant.expires <= time.time())):
            del self._grants[(token, in_url)]
            return False
        return True

    async def check(self, token: str, in_url: bool) -> None:
        """Raises AuthError unless the token may fetch thumbnails; remembers a yes."""
        if self.valid(token, in_url):
            return
        revision = self.auth.revision
        principal, expires = await self.auth.thumbnail_access(token, in_url=in_url)
        if len(self._grants) >= MAX_GRANTS:
            self._grants.pop(next(iter(self._grants)))
        self._grants[(token, in_url)] = _Grant(principal, time.monotonic() + self.ttl, expires, revision)

    def clear(self) -> None:
        self._grants.clear()


class _HttpDate:
    """The Date header, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def __call__(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode()
        return self._value


@dataclass(frozen=True, slots=True)
class _FileAnswer:
    """An answer whose body goes out with sendfile (a thumbnail too big for the memory cache)."""

    head: bytes
    path: Path
    size: int


@dataclass(slots=True)
class _Request:
    method: bytes
    url: bytes
    keep_alive: bool
    authorization: bytes | None
    if_none_match: bytes | None
    error: tuple[int, str, str] | None  # (status, code, message) found while parsing
    host: bytes | None = None
    local: Any = None  # the address the client connected to (our own)
    # (thumb_key, size, token, token_in_url), set by answer_now for the slow path
    target: tuple[str, str, str, bool] | None = None


class ThumbServer:
    """Owns the listening socket and the open connections."""

    def __init__(self, thumbnails: ThumbnailService, auth: AuthService, *, limits: Limits = Limits(),
                 hosts: KnownHosts | None = None) -> None:
        self.thumbnails = thumbnails
        self.header_timeout = limits.header_timeout
        self.idle_timeout = limits.idle_timeout
        self.limiter = ConnectionLimiter(limits.max_connections, limits.max_connections_per_address)
        self.hosts = hosts if hosts is not None else KnownHosts(machine_names())
        self.max_held = MAX_HELD
        self._hosts_ok: set[bytes] = set()  # Host values found to be ours (the hot path skips the check)
        self.grants = Grants(auth)
        self.date = _HttpDate()
        self._heads: dict[tuple[Any, int], bytes] = {}  # the fixed part of a thumbnail's 200 head
        self.connections: set[_Connection] = set()
        self.requests = 0
        self.fast = 0
        self._server: asyncio.AbstractServer | None = None
        self.port: int | None = None

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
        """Listen on host:port; with `ssl_context`, HTTPS (the API port's certificate)."""
        loop = asyncio.get_running_loop()
        tls = {"ssl": ssl_context, "ssl_handshake_timeout": self.header_timeout} if ssl_context else {}
        self._server = await loop.create_server(lambda: _Connection(self), host, port, reuse_address=True,
                                                backlog=1024, **tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for conn in list(self.connections):
                conn.close()
            await self._server.wait_closed()
            self._server = None
        self.grants.clear()

    def status(self) -> dict[str, Any]:
        cache = self.thumbnails.cache
        return {"port": self.port, "connections": len(self.connections), "requests": self.requests,
                "refused_connections": self.limiter.refused,
                "served_from_memory": self.fast, "cache": {"items": len(cache), "bytes": cache.bytes,
                                                           "limit_bytes": cache.max_bytes, "hits": cache.hits,
                                                           "misses": cache.misses}}

    # -- answers ---------------------------------------------------------------------------------

    def head(self, status: int, headers: list[tuple[bytes, bytes]], length: int, keep_alive: bool) -> bytes:
        lines = [b"HTTP/1.1 %d %s" % (status, REASONS.get(status, b"")), b"Date: " + self.date(),
                 b"Content-Length: %d" % length]
        lines += [k + b": " + v for k, v in headers]
        if not keep_alive:
            lines.append(b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def thumb_answer(self, req: _Request, thumb: Thumb, body: bytes, length: int | None = None) -> bytes:
        """The answer to a thumbnail request: 304, or the head (with `length`, default len(body))
        followed by body unless it is a HEAD request."""
        if length is None and req.if_none_match is None and req.method == b"GET":  # the hot path: a prepared head
            start = self._heads.get((thumb.path, len(body)))
            if start is None:
                if len(self._heads) >= MAX_GRANTS:
                    self._heads.clear()
                start = self._heads[(thumb.path, len(body))] = b"\r\n".join([
                    b"HTTP/1.1 200 OK", b"Content-Type: " + thumb.content_type.encode(),
                    b"Content-Length: %d" % len(body), b"Cache-Control: " + IMMUTABLE,
                    b"ETag: " + thumb.etag.encode(), b"X-Content-Type-Options: nosniff", b"Date: "])
            return b"".join((start, self.date(), b"\r\n\r\n" if req.keep_alive else b"\r\nConnection: close\r\n\r\n",
                             body))
        etag = thumb.etag.encode()
        headers = [(b"Cache-Control", IMMUTABLE), (b"ETag", etag), (b"X-Content-Type-Options", b"nosniff")]
        if req.if_none_match is not None and etag in req.if_none_match:
            return self.head(304, headers, 0, req.keep_alive)
        headers.insert(0, (b"Content-Type", thumb.content_type.encode()))
        head = self.head(200, headers, len(body) if length is None else length, req.keep_alive)
        return head if req.method == b"HEAD" else head + body

    def error_answer(self, req: _Request | None, status: int, code: str, message: str, *,
                     close: bool = False, extra: list[tuple[bytes, bytes]] | None = None) -> bytes:
        body = json.dumps({"error": code, "message": message, "details": None}).encode()
        keep_alive = bool(req and req.keep_alive and not close)
        head = self.head(status, [(b"Content-Type", b"application/json; charset=utf-8"), *(extra or [])],
                         len(body), keep_alive)
        return head if req is not None and req.method == b"HEAD" else head + body

    def answer_now(self, req: _Request) -> bytes | None:
        """The answer if it needs no waiting (errors, and remembered token + thumbnail in memory);
        None when the slow path must run."""
        self.requests += 1
        if req.host is not None and req.host not in self._hosts_ok:
            host = req.host.decode("latin-1")
            if not self.hosts.allows(host, req.local):
                return self.error_answer(req, 421, "unknown_host", self.hosts.refusal(host), close=True)
            if len(self._hosts_ok) >= 256:
                self._hosts_ok.clear()
            self._hosts_ok.add(req.host)
        if req.error is not None:
            status, code, message = req.error
            return self.error_answer(req, status, code, message, close=True)
        if req.method not in (b"GET", b"HEAD"):
            return self.error_answer(req, 405, "method_not_allowed", "only GET and HEAD are served here",
                                     extra=[(b"Allow", b"GET, HEAD")])
        path, _, query = req.url.partition(b"?")
        m = PATH.match(path.decode("latin-1"))
        if m is None:
            return self.error_answer(req, 404, "not_found",
                                     "this port only serves thumbnails: /api/v1/t/<thumb_key>/<size>")
        key, size = m.group(1), m.group(2)
        try:
            check_request(key, size)
        except ThumbnailRequestError as exc:
            return self.error_answer(req, 400, "bad_request", str(exc))
        token, in_url = self.token_of(req, query)
        if token is None:
            return self.error_answer(req, 401, "unauthorized",
                                     "log in first: send `Authorization: Bearer <token>` or ?t=<thumbnail token>",
                                     extra=[(b"WWW-Authenticate", b"Bearer")])
        if self.grants.valid(token, in_url):
            thumb = self.thumbnails.cached(key, size)
            if thumb is not None and thumb.body is not None:
                self.fast += 1
                return self.thumb_answer(req, thumb, thumb.body)
        req.target = (key, size, token, in_url)
        return None

    async def answer_later(self, req: _Request) -> "bytes | _FileAnswer":
        """The slow path: check the token against the database, read or make the thumbnail."""
        assert req.target is not None
        key, size, token, in_url = req.target
        try:
            await self.grants.check(token, in_url)
            thumb = await self.thumbnails.get(key, size)
            if thumb.body is None and req.method == b"GET" and not (
                    req.if_none_match is not None and thumb.etag.encode() in req.if_none_match):
                head = self.thumb_answer(req, thumb, b"", length=thumb.size)  # too big to keep: sendfile
                return _FileAnswer(head, thumb.path, thumb.size)
            return self.thumb_answer(req, thumb, thumb.body or b"", length=thumb.size)
        except AuthError as exc:
            extra = [(b"WWW-Authenticate", b"Bearer")] if exc.status == 401 else None
            return self.error_answer(req, exc.status, exc.code, exc.message, extra=extra)
        except ApiError as exc:
            return self.error_answer(req, exc.status, exc.code, exc.message)
        except ThumbnailRequestError as exc:
            return self.error_answer(req, 400, "bad_request", str(exc))
        except Exception:
            log.exception("thumbnail server: %s failed", req.url[:200])
            return self.error_answer(req, 500, "internal", "the thumbnail could not be sent; see the server log")

    @staticmethod
    def token_of(req: _Request, query: bytes) -> tuple[str | None, bool]:
        if req.authorization is not None:
            scheme, _, value = req.authorization.partition(b" ")
            if scheme.lower() == b"bearer" and value.strip():
                return value.strip().decode("latin-1"), False
        for part in query.split(b"&"):
            if part.startswith(b"t=") and len(part) > 2:
                return unquote(part[2:].decode("latin-1")), True
        return None, False


def _request_end(data: bytes) -> int:
    """Where the first request's header block in `data` ends (after its blank line), or -1.
    Thumbnail requests have no body (one with a body is refused), so this cuts exactly."""
    crlf = data.find(b"\n\r\n")
    lf = data.find(b"\n\n")
    if crlf < 0:
        return -1 if lf < 0 else lf + 2
    return crlf + 3 if lf < 0 or crlf < lf else lf + 2


class _Connection(asyncio.Protocol):
    """One client connection: parse with httptools, answer in order, enforce the limits."""

    def __init__(self, server: ThumbServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: deque[asyncio.Future[bytes | _FileAnswer] | bytes] = deque()
        self.held = 0  # bytes of the answers in `pending` that are ready
        self.making = 0  # answers in `pending` still being made
        self.inbox = b""  # bytes read but not yet parsed (we stopped: too much held)
        self.feeding = False
        self.closing = False
        self.sending_file = False
        self.reading_paused = False
        self.writing_paused = False
        self.key = "?"
        self.local: Any = None
        self.admitted = False
        self._timer: asyncio.TimerHandle | None = None
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.header_bytes = 0
        self.header_count = 0
        self.authorization: bytes | None = None
        self.if_none_match: bytes | None = None
        self.host: bytes | None = None
        self.error: tuple[int, str, str] | None = None
        self.in_message = False

    # -- transport events ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.key = client_key(transport.get_extra_info("peername"))
        refusal = self.server.limiter.admit(self.key)
        if refusal is not None:
            transport.write(raw_error(503, "Service Unavailable", "too_many_connections", refusal,
                                      "Retry-After: 5\r\n"))
            transport.close()
            self.closing = True
            return
        self.admitted = True
        self.local = transport.get_extra_info("sockname")
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.server.connections.add(self)
        self._arm(self.server.idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.admitted:
            self.admitted = False
            self.server.limiter.release(self.key)
        self.closing = True
        self.inbox = b""
        if self._timer is not None:
            self._timer.cancel()
        for item in self.pending:
            if isinstance(item, asyncio.Future):
                item.cancel()
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.inbox = self.inbox + data if self.inbox else data
        self._feed()

    def _full(self) -> bool:
        """Does this connection hold as much as it may? Answers being made count at their
        largest possible size (a thumbnail just under the memory cache's item limit)."""
        if len(self.pending) >= MAX_PIPELINE:
            return True
        transport = self.transport
        buffered = transport.get_write_buffer_size() if transport is not None else 0
        return buffered + self.held + self.making * self.server.thumbnails.cache.max_item >= self.server.max_held

    def _feed(self) -> None:
        """Give the parser one request at a time while there is room; keep the rest and stop
        reading when there is not."""
        if self.feeding:
            return
        self.feeding = True
        try:
            data = self.inbox
            while data and not self.closing and not self._full():
                end = _request_end(data)
                if end < 0 or end >= len(data):
                    chunk, data = data, b""
                else:
                    chunk, data = data[:end], data[end:]
                try:
                    self.parser.feed_data(chunk)
                except httptools.HttpParserUpgrade:
                    data = b""
                    self._fail(400, "bad_request", "protocol upgrades are not served here")
                except httptools.HttpParserError as exc:
                    data = b""
                    if self.error is not None:  # a limit we stopped the parser for
                        self._fail(*self.error)
                    else:
                        self._fail(400, "bad_request", f"malformed HTTP request: {exc}")
            self.inbox = b"" if self.closing else data
        finally:
            self.feeding = False
        if self.inbox:
            self._pause_reading()
        else:
            self._maybe_resume_reading()

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._feed()

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    # -- parser callbacks ------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset()
        self.in_message = True
        self._arm(self.server.header_timeout)  # from the first byte, not reset by more bytes: no slow-loris

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_URL:
            self.error = (414, "uri_too_long", f"the request line is longer than {MAX_URL} bytes")
            raise ValueError("url too long")  # stops the parser: data_received answers and closes

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        self.header_bytes += len(name) + len(value) + 4
        if self.header_count > MAX_HEADERS or self.header_bytes > MAX_HEADER_BYTES:
            self.error = (431, "headers_too_large", f"at most {MAX_HEADERS} headers and {MAX_HEADER_BYTES} bytes")
            raise ValueError("headers too large")
        lower = name.lower()
        if lower == b"authorization":
            self.authorization = value
        elif lower == b"host":
            self.host = value
        elif lower == b"if-none-match":
            self.if_none_match = value
        elif (lower == b"content-length" and value.strip() != b"0") or lower == b"transfer-encoding":
            self.error = (400, "bad_request", "a thumbnail request has no body")
            raise ValueError("body")  # never read a body we would throw away

    def on_body(self, body: bytes) -> None:
        self.error = (400, "bad_request", "a thumbnail request has no body")

    def on_message_complete(self) -> None:
        self.in_message = False
        if self.closing:  # pipelined after a request that ends the connection
            return
        req = _Request(method=self.parser.get_method(), url=self.url, keep_alive=self.parser.should_keep_alive(),
                       authorization=self.authorization, if_none_match=self.if_none_match, error=self.error,
                       host=self.host, local=self.local)
        if req.error is not None:
            req.keep_alive = False
        answer = self.server.answer_now(req)
        if answer is not None:
            self.pending.append(answer)
            self.held += len(answer)
        else:
            task = asyncio.ensure_future(self.server.answer_later(req))
            task.add_done_callback(self._made)
            self.pending.append(task)
            self.making += 1
        if not req.keep_alive:
            self.closing = True  # read nothing more; close once the answers are out
        self._flush()

    def _made(self, task: "asyncio.Future[bytes | _FileAnswer]") -> None:
        self.making -= 1
        if not task.cancelled():
            result = task.result()
            if isinstance(result, bytes):
                self.held += len(result)
        self._flush()

    # -- writing ---------------------------------------------------------------------------------

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or self.sending_file:
            return
        while self.pending:
            head = self.pending[0]
            if isinstance(head, asyncio.Future):
                if not head.done():
                    return
                if head.cancelled():
                    self.pending.popleft()
                    continue
                head = head.result()
            self.pending.popleft()
            if isinstance(head, _FileAnswer):
                self.sending_file = True  # the answers behind it wait until the file is out
                asyncio.ensure_future(self._send_file(head))
                return
            self.held -= len(head)
            transport.write(head)
        if self.closing:
            transport.close()
            return
        if self.inbox:
            self._feed()
        else:
            self._maybe_resume_reading()
        if not self.in_message:
            self._arm(self.server.idle_timeout)

    async def _send_file(self, answer: _FileAnswer) -> None:
        """The head, then the file with sendfile (the kernel copies it; asyncio pauses reading
        meanwhile). A file that vanished or a client that left closes the connection: the head
        is already out, so no error answer is possible."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        try:
            f = await loop.run_in_executor(None, answer.path.open, "rb")
            try:
                self.transport.write(answer.head)
                await loop.sendfile(self.transport, f, 0, answer.size)
            finally:
                f.close()
        except (OSError, RuntimeError) as exc:
            log.info("thumbnail server: sending %s stopped: %s", answer.path.name, exc)
            self.sending_file = False
            self.close()
            return
        self.sending_file = False
        self._flush()

    def _fail(self, status: int, code: str, message: str) -> None:
        """The byte stream is not trustworthy any more: answer (after earlier answers) and close."""
        if self.closing:
            return
        answer = self.server.error_answer(None, status, code, message, close=True)
        self.pending.append(answer)
        self.held += len(answer)
        self.closing = True
        self._flush()

    def _pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None and not self.transport.is_closing():
            self.reading_paused = True
            self.transport.pause_reading()

    def _maybe_resume_reading(self) -> None:
        if (self.reading_paused and not self.writing_paused and not self.inbox and not self._full()
                and self.transport is not None and not self.transport.is_closing()):
            self.reading_paused = False
            self.transport.resume_reading()

    def _arm(self, seconds: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(seconds, self._timeout)

    def _timeout(self) -> None:
        if self.closing:
            return
        if self.sending_file:  # a big file to a slow client is not idleness
            self._arm(self.server.idle_timeout)
            return
        if self.in_message:
            self._fail(408, "timeout", f"the request did not arrive within {self.server.header_timeout:g} s")
        elif not self.pending:
            self.close()
        else:
            self._arm(self.server.idle_timeout)

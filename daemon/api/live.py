"""GET /api/v1/live: a WebSocket of what happens in the library, for the web app and scripts.

Messages are JSON text frames, all of one shape, `{"id", "type", "time", "data"}`:
- every event of the bus (daemon.events.bus: photo.added, photo.indexed, album.created, ...),
  with the event's own id;
- `index.progress` about once a second while indexing runs (and once when it stops), id null:
  {"indexing", "queue", "in_flight", "done"};
- `live.heartbeat` every `heartbeat` seconds, id null: {"dropped"} (a client that hears nothing
  for two heartbeats may assume the connection is gone);
- `live.dropped` before the next message when this client fell behind and lost messages, id null:
  {"count", "total"}: refetch what you show;
- `live.ready` once, after authentication: {"user", "role"}.

Authentication. Browsers cannot set headers on a WebSocket, so there are two ways in:
`Authorization: Bearer <access or app token>` on the upgrade request (scripts), or, without that
header, a first text message `{"type": "auth", "token": "<access token>"}` within 5 seconds
(browsers; the way Home Assistant's WebSocket API does it). Sockets still waiting for that message
cost the daemon without anyone being known, so at most `max_unauthenticated` of them wait at once,
`max_unauthenticated_per_address` from one address; more are refused with 503 before the upgrade. Tokens are not accepted in the URL
(`?t=`): URLs end up in logs and browser history, and the URL token of the thumbnails is scoped to
thumbnails only. The route is therefore public in the access-policy sense and authenticates
itself, with the same AuthService and the same `read` scope rule the middleware applies. A plain
GET without credentials answers 401 like every other route. Failures after the upgrade close the
socket with code 4401 (credentials) or 4403 (scope). The session (or app token) is checked again
every `recheck` seconds, so logging out or revoking it closes the socket within seconds.

Back-pressure: one task reads the bus for all clients and gives each client a bounded queue; a
client that does not keep up loses its oldest messages (counted, and told with `live.dropped`),
and one that does not take a message within `send_timeout` seconds is disconnected. Neither can
slow the bus, the indexer or the other clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Optional

from aiohttp import WSMsgType, web
from aiohttp_pydantic.oas.typing import r200
from pydantic import BaseModel

from daemon.api.access import bearer, public
from daemon.api.errors import ApiError, bad_request, validated
from daemon.api.limits import ConnectionLimiter, client_key
from daemon.api.keys import APP_KEY
from daemon.app import App
from daemon.auth import sessions
from daemon.auth.errors import AuthError, Forbidden, InvalidCredentials
from daemon.auth.roles import Principal, Scope
from daemon.auth.tokens import token_hash
from daemon.events.bus import INDEX_FINISHED, INDEX_STARTED, event_time

log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4408


@dataclass(frozen=True)
class LiveSettings:
    queue: int = 256  # messages held per client before the oldest are dropped
    heartbeat: float = 15.0  # seconds between live.heartbeat messages (and WebSocket pings)
    recheck: float = 2.0  # seconds between checks that the session or token is still valid
    auth_timeout: float = 5.0  # seconds a browser has to send its auth message
    max_unauthenticated: int = 32  # sockets waiting for their auth message, in total
    max_unauthenticated_per_address: int = 4  # ... from one client address
    send_timeout: float = 10.0  # a client that takes no message for this long is disconnected
    progress: float = 1.0  # seconds between index.progress messages while indexing


class LiveMessage(BaseModel):
    """Every message on the socket."""

    id: Optional[str] = None
    type: str
    time: str
    data: dict[str, Any]


def message(type: str, data: dict[str, Any], id: str | None = None) -> str:
    return json.dumps({"id": id, "type": type, "time": event_time(), "data": data}, separators=(",", ":"),
                      ensure_ascii=False)


@dataclass(eq=False)
class Client:
    """One connected socket's outbox: bounded, dropping the oldest when full."""

    ws: web.WebSocketResponse
    size: int
    queue: deque[str] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0
    unreported: int = 0

    def offer(self, text: str) -> None:
        if len(self.queue) >= self.size:
            self.queue.popleft()
            self.dropped += 1
            self.unreported += 1
        self.queue.append(text)
        self.wake.set()


class LiveHub:
    """Reads the event bus once for every client and sends index progress while indexing."""

    def __init__(self, app: App, settings: LiveSettings) -> None:
        self.app = app
        self.settings = settings
        self.clients: set[Client] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._poke = asyncio.Event()
        self.sent = 0
        self.unauthenticated = ConnectionLimiter(settings.max_unauthenticated, settings.max_unauthenticated_per_address)

    async def start(self, _: web.Application) -> None:
        if self.app.events is not None:
            self._tasks.append(asyncio.create_task(self._fan_out(), name="live-fan-out"))
            await asyncio.sleep(0)  # let the stream subscribe before the server takes clients
        self._tasks.append(asyncio.create_task(self._progress(), name="live-progress"))

    def broadcast(self, text: str) -> None:
        for client in self.clients:
            client.offer(text)

    async def _fan_out(self) -> None:
        assert self.app.events is not None
        async for event in self.app.events.bus.stream():
            if self.clients:
                self.broadcast(message(event.type, event.data, event.id))
                if event.type in (INDEX_STARTED, INDEX_FINISHED):
                    self._poke.set()  # progress at the start and the end of a run, however short

    def indexing(self) -> bool:
        """The same rule as the MQTT state: jobs running, a scan running, or a run not yet finished."""
        app = self.app
        return (bool(app.queue and app.queue.in_flight) or bool(app.scanner and app.scanner.running)
                or bool(app.events and app.events.index.running))

    async def _progress(self) -> None:
        was = False
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self.settings.progress)
            poked = self._poke.is_set()
            self._poke.clear()
            if not self.clients or self.app.queue is None:
                was = False
                continue
            now = self.indexing()
            if now or was or poked:
                try:
                    pending = await self.app.queue.pending()
                except Exception:  # the store is closing
                    continue
                q = self.app.queue
                self.broadcast(message("index.progress", {
                    "indexing": now, "queue": sum(pending.values()), "by_kind": pending,
                    "in_flight": q.in_flight, "done": q.stats.done}))
            was = now

    async def shutdown(self, _: web.Application) -> None:
        """Close every socket (1001 going away) so the server can stop."""
        for client in list(self.clients):
            with contextlib.suppress(Exception):
                await client.ws.close(code=1001, message=b"the server is shutting down")

    async def cleanup(self, _: web.Application) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


LIVE_HUB: web.AppKey[LiveHub] = web.AppKey("shoebox_live")


async def _authenticate(app: App, token: str) -> Principal:
    if app.auth is None:
        raise InvalidCredentials("the server is starting")
    who = await app.auth.authenticate(token)
    if not who.can(Scope.READ):
        raise Forbidden("live updates need the 'read' permission")
    return who


async def still_valid(app: App, who: Principal, token: str) -> bool:
    """Is the session (or app token) behind this socket still live? One indexed lookup."""
    assert app.db is not None
    if who.via == "app_token":
        row = await app.db.read(lambda c: sessions.active_app_token(c, token_hash(token)))
    else:
        assert who.session_uid is not None
        row = await app.db.read(lambda c: sessions.active_session(c, who.session_uid, who.user_id))
    return row is not None


async def _first_message_auth(app: App, ws: web.WebSocketResponse,
                              timeout: float) -> tuple[Principal, str] | None:
    """A browser's `{"type": "auth", "token": ...}`; closes the socket and answers None otherwise."""
    try:
        msg = await ws.receive(timeout=timeout)
    except asyncio.TimeoutError:
        await ws.close(code=CLOSE_UNAUTHORIZED, message=b"no auth message in time")
        return None
    token = None
    if msg.type == WSMsgType.TEXT:
        try:
            body = json.loads(msg.data)
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("type") == "auth" and isinstance(body.get("token"), str):
            token = body["token"][:4096]
    if token is None:
        if not ws.closed:
            await ws.close(code=CLOSE_UNAUTHORIZED,
                           message=b'send {"type": "auth", "token": "<access token>"} first')
        return None
    try:
        return await _authenticate(app, token), token
    except AuthError as exc:
        await ws.close(code=CLOSE_FORBIDDEN if exc.status == 403 else CLOSE_UNAUTHORIZED,
                       message=exc.message.encode()[:120])
        return None


async def _hang_up(request: web.Request, ws: web.WebSocketResponse, code: int, why: bytes) -> None:
    """Close a socket whose peer stopped reading: a close frame cannot get through a full buffer
    either, so after a second the connection is cut."""
    try:
        await asyncio.wait_for(ws.close(code=code, message=why), 1.0)
    except (asyncio.TimeoutError, ConnectionError, RuntimeError):
        if request.transport is not None:
            request.transport.abort()


async def _read(ws: web.WebSocketResponse, client: Client) -> None:
    """Take what the client sends (nothing is expected after auth) so pings, pongs and close
    frames are handled; wake the sender when the client goes."""
    try:
        async for _ in ws:
            pass
    finally:
        client.wake.set()


@public
@validated
async def live(request: web.Request) -> r200[LiveMessage]:
    """A WebSocket of events and index progress (README: Live updates). Authenticate with
    `Authorization: Bearer` on the upgrade, or send `{"type": "auth", "token": ...}` as the first
    message (browsers). Needs the `read` scope; closes within seconds of a logout or revocation.

    Tags: events
    Status Codes:
        101: switching to the WebSocket protocol
        400: not a WebSocket upgrade request
        401: no valid credentials
    """
    app: App = request.app[APP_KEY]
    hub = request.app[LIVE_HUB]
    s = hub.settings
    ws = web.WebSocketResponse(heartbeat=s.heartbeat * 2, max_msg_size=16 * 1024)
    upgrade = ws.can_prepare(request).ok
    token = bearer(request)
    who: Principal | None = None
    if token is not None:
        who = await _authenticate(app, token)  # a bad header is refused before the upgrade: 401/403
    elif not upgrade:
        raise InvalidCredentials("log in first: send `Authorization: Bearer <token>` (or, on the WebSocket, "
                                 "an auth message)")
    if not upgrade:
        raise bad_request("this is a WebSocket: connect with `Upgrade: websocket`")
    if who is None:
        key = client_key(request.transport.get_extra_info("peername") if request.transport else None)
        refusal = hub.unauthenticated.admit(key)
        if refusal is not None:
            raise ApiError(503, "too_many_unauthenticated_sockets",
                           refusal.replace("connections", "WebSockets waiting for their auth message"),
                           headers={"Retry-After": str(int(s.auth_timeout) + 1)})
        try:
            await ws.prepare(request)
            got = await _first_message_auth(app, ws, s.auth_timeout)
        finally:
            hub.unauthenticated.release(key)
        if got is None:
            return ws
        who, token = got
    else:
        await ws.prepare(request)
    assert token is not None
    client = Client(ws, s.queue)
    hub.clients.add(client)
    reader = asyncio.create_task(_read(ws, client), name="live-reader")
    try:
        await ws.send_str(message("live.ready", {"user": who.username, "role": who.role.value}))
        loop = asyncio.get_running_loop()
        next_check = loop.time() + s.recheck
        next_beat = loop.time() + s.heartbeat
        while not ws.closed and not reader.done():
            wait = max(0.0, min(next_check, next_beat) - loop.time())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(client.wake.wait(), wait)
            client.wake.clear()
            now = loop.time()
            if now >= next_check:
                next_check = now + s.recheck
                if not await still_valid(app, who, token):
                    # Stop the reader first: two tasks reading one socket during the close
                    # handshake made the close arrive as an abnormal closure (1006), not 4401.
                    reader.cancel()
                    await asyncio.gather(reader, return_exceptions=True)
                    await ws.close(code=CLOSE_UNAUTHORIZED, message=b"the session has ended")
                    break
            if now >= next_beat:
                next_beat = now + s.heartbeat
                client.offer(message("live.heartbeat", {"dropped": client.dropped}))
            while client.queue and not ws.closed:
                if client.unreported:
                    text = message("live.dropped", {"count": client.unreported, "total": client.dropped})
                    client.unreported = 0
                else:
                    text = client.queue.popleft()
                try:
                    await asyncio.wait_for(ws.send_str(text), s.send_timeout)
                except asyncio.TimeoutError:
                    log.info("live: %s did not take a message in %g s; disconnected", who.username, s.send_timeout)
                    await _hang_up(request, ws, CLOSE_TOO_SLOW, b"too slow")
                    break
                hub.sent += 1
    except (ConnectionError, RuntimeError):  # the client went away mid-send
        pass
    finally:
        hub.clients.discard(client)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        if not ws.closed:
            await ws.close()
    return ws


def setup_routes(web_app: web.Application, prefix: str, settings: LiveSettings | None = None) -> None:
    hub = LiveHub(web_app[APP_KEY], settings or LiveSettings())
    web_app[LIVE_HUB] = hub
    web_app.on_startup.append(hub.start)
    web_app.on_shutdown.append(hub.shutdown)
    web_app.on_cleanup.append(hub.cleanup)
    web_app.router.add_get(f"{prefix}/live", live)

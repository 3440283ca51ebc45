"""The live WebSocket against a real App indexing real photos, through aiohttp's WebSocket client
on a real loopback port: events of a photo dropped into the library arrive, credentials are
needed (header or first message), a logout closes the socket within seconds, and a client that
does not read neither slows the bus nor the other clients."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from daemon.api.live import LIVE_HUB, LiveSettings
from daemon.auth.roles import Role
from tests.integration.api_support import add_user, api, auth, login, settings
from tests.integration.support import make_config
from tests.integration.test_events_helpers import distinct_copies
from tests.integration.test_events_webhooks import JOLLA
from tests.waiting import wait_until_async


async def messages_until(ws: aiohttp.ClientWebSocketResponse, done: Any, timeout: float) -> list[dict[str, Any]]:
    """Every JSON message until done(messages) is true; fails after timeout seconds."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not done(got):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; got {[m['type'] for m in got]}"
        msg = await ws.receive(timeout=left)
        assert msg.type == WSMsgType.TEXT, f"socket ended: {msg.type} {ws.close_code} {msg.extra}"
        got.append(json.loads(msg.data))
    return got


def types(got: list[dict[str, Any]]) -> list[str]:
    return [m["type"] for m in got]


async def test_a_photo_dropped_into_the_library_streams_its_events(library: Path, tmp_path: Path,
                                                                   samples: Path) -> None:
    async with api(make_config(library, tmp_path / "data", **settings())) as (app, client):
        await add_user(app, "vera", Role.VIEWER)  # reading is enough
        h = auth(await login(client, "vera"))
        async with client.ws_connect("/api/v1/live", headers=h) as ws:
            ready = await messages_until(ws, lambda g: g, 5)
            assert ready[0]["type"] == "live.ready" and ready[0]["data"] == {"user": "vera", "role": "viewer"}
            [photo] = distinct_copies(samples / JOLLA, library, 1)
            await app.scan()
            got = await messages_until(ws, lambda g: "photo.indexed" in types(g), 30)
        added = next(m for m in got if m["type"] == "photo.added")
        indexed = next(m for m in got if m["type"] == "photo.indexed")
        assert types(got).index("photo.added") < types(got).index("photo.indexed")
        uid = await app.db.scalar("SELECT uid FROM photos")
        assert added["data"]["photo"] == uid and indexed["data"]["photo"] == uid, (added, indexed)
        for m in (added, indexed):  # the bus's own event: id, type, time, data
            assert set(m) == {"id", "type", "time", "data"} and len(m["id"]) == 26 and m["time"].endswith("Z")
        assert photo.name in json.dumps(added["data"])


async def test_progress_while_indexing_and_heartbeats(library: Path, tmp_path: Path, samples: Path) -> None:
    async with api(make_config(library, tmp_path / "data", **settings())) as (app, client):
        client.server.app[LIVE_HUB].settings = LiveSettings(heartbeat=0.5, progress=0.2)
        await add_user(app, "ann", Role.USER)
        h = auth(await login(client, "ann"))
        async with client.ws_connect("/api/v1/live", headers=h) as ws:
            await messages_until(ws, lambda g: g, 5)
            beats = await messages_until(ws, lambda g: "live.heartbeat" in types(g), 3)
            assert beats[-1]["data"] == {"dropped": 0} and beats[-1]["id"] is None
            distinct_copies(samples / JOLLA, library, 12)
            await app.scan()
            got = await messages_until(
                ws, lambda g: any(m["type"] == "index.progress" and not m["data"]["indexing"] for m in g), 60)
        progress = [m["data"] for m in got if m["type"] == "index.progress"]
        assert progress[0]["indexing"] is True and progress[-1]["indexing"] is False
        assert progress[-1]["queue"] == 0 and progress[-1]["done"] >= 12
        assert types(got).count("photo.indexed") == 12


async def test_credentials_are_needed_and_a_logout_closes_the_socket(library: Path, tmp_path: Path) -> None:
    async with api(make_config(library, tmp_path / "data", **settings())) as (app, client):
        client.server.app[LIVE_HUB].settings = LiveSettings(auth_timeout=1.0)
        await add_user(app, "ann", Role.ADMIN)
        tokens = await login(client, "ann")

        # plain HTTP: 401 without credentials, 400 with (it is a WebSocket)
        r = await client.get("/api/v1/live")
        assert r.status == 401 and (await r.json())["error"] == "unauthorized"
        assert (await client.get("/api/v1/live", headers=auth(tokens))).status == 400
        # the upgrade with a bad header is refused before it happens; the URL token opens nothing here
        for h, params in ((auth("not-a-token"), None), (auth(tokens["thumb_token"]), None),
                          (auth(tokens["refresh_token"]), None)):
            try:
                async with client.ws_connect("/api/v1/live", headers=h, params=params):
                    raise AssertionError(f"{h} was let in")
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 401
        # no header: the first message must authenticate; silence, junk or a bad token close it (4401)
        for first in (None, "hello", json.dumps({"type": "auth", "token": "forged"}),
                      json.dumps({"type": "auth", "token": tokens["thumb_token"]})):
            async with client.ws_connect("/api/v1/live", params={"t": tokens["thumb_token"]}) as ws:
                if first is not None:
                    await ws.send_str(first)
                msg = await ws.receive(timeout=5)
                assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED), (first, msg)
                assert ws.close_code == 4401, (first, ws.close_code)

        # a browser: the access token as the first message
        async with client.ws_connect("/api/v1/live") as browser, \
                client.ws_connect("/api/v1/live", headers=auth(tokens)) as script:
            await browser.send_str(json.dumps({"type": "auth", "token": tokens["access_token"]}))
            assert types(await messages_until(browser, lambda g: g, 5)) == ["live.ready"]
            assert types(await messages_until(script, lambda g: g, 5)) == ["live.ready"]
            # logging out ends the session: both sockets close within seconds
            started = time.monotonic()
            assert (await client.post("/api/v1/auth/logout", headers=auth(tokens))).status == 204
            for ws in (browser, script):
                while True:
                    msg = await ws.receive(timeout=6)
                    if msg.type != WSMsgType.TEXT:
                        break
                assert ws.close_code == 4401
            assert time.monotonic() - started < 5
        # and the server forgets them (its handlers finish right after the close handshake)
        await wait_until_async(lambda: not client.server.app[LIVE_HUB].clients, 3,
                               what="closed sockets to leave the hub")


async def test_a_revoked_app_token_closes_its_socket(library: Path, tmp_path: Path) -> None:
    async with api(make_config(library, tmp_path / "data", **settings())) as (app, client):
        await add_user(app, "ann", Role.USER)
        session = await login(client, "ann")
        r = await client.post("/api/v1/auth/tokens", json={"name": "frame", "scopes": ["read"]}, headers=auth(session))
        made = await r.json()
        async with client.ws_connect("/api/v1/live", headers=auth(made["token"])) as ws:
            await messages_until(ws, lambda g: g, 5)
            assert (await client.delete(f"/api/v1/auth/tokens/{made['id']}", headers=auth(session))).status == 204
            msg = await ws.receive(timeout=6)
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED) and ws.close_code == 4401
        # a thumbnails-only token may not listen
        r = await client.post("/api/v1/auth/tokens", json={"name": "wall", "scopes": ["thumbnails"]},
                              headers=auth(session))
        try:
            async with client.ws_connect("/api/v1/live", headers=auth((await r.json())["token"])):
                raise AssertionError("a thumbnails-only token was let in")
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 403


async def _reader(client: TestClient, h: dict[str, str]) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect("/api/v1/live", headers=h, compress=0)  # no deflate: the bytes are real
    await messages_until(ws, lambda g: g, 5)
    return ws


async def _stalled_socket(client: TestClient, h: dict[str, str]) -> socket.socket:
    """A WebSocket client that upgrades and then never reads: a phone gone into a tunnel."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", client.server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /api/v1/live HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: {h['Authorization']}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await asyncio.to_thread(sock.recv, 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def test_a_client_that_does_not_read_slows_nothing(library: Path, tmp_path: Path) -> None:
    async with api(make_config(library, tmp_path / "data", **settings())) as (app, client):
        hub = client.server.app[LIVE_HUB]
        hub.settings = LiveSettings(queue=50, send_timeout=1.0)
        await add_user(app, "ann", Role.ADMIN)
        h = auth(await login(client, "ann"))
        stalled = await _stalled_socket(client, h)
        lively = await _reader(client, h)
        assert app.events is not None
        bus = app.events.bus
        # a burst far bigger than the stalled client's queue and its socket buffers
        started = time.monotonic()
        padding = "x" * 1000
        for i in range(20000):
            bus.publish("photo.updated", {"photo": f"p{i}", "padding": padding})
            if i % 100 == 99:  # bursts as indexing makes them (the bus's own live queue holds 1000)
                await bus.flush()
                await asyncio.sleep(0.002)  # not a wait: the pause between bursts is part of the load
        await bus.flush()
        assert time.monotonic() - started < 10, "the bus waited for a stalled WebSocket"
        # the reading client gets the newest event promptly; what it lost is counted and told
        seen: list[dict[str, Any]] = []
        got = await messages_until(lively, lambda g: any(m["data"].get("photo") == "p19999" for m in g), 20)
        seen.extend(got)
        dropped = [m["data"] for m in seen if m["type"] == "live.dropped"]
        delivered = [m for m in seen if m["type"] == "photo.updated"]
        assert len(delivered) + sum(d["count"] for d in dropped) == 20000
        # the stalled client is disconnected (too slow) once what is sent to it no longer fits
        # its socket buffers, and the hub forgets it. How much of the burst reached the stalled
        # socket depends on scheduling, so events keep coming (as they do while indexing) until
        # the buffers are full, however large the kernel made them.
        deadline = time.monotonic() + 15
        i = 0
        while len(hub.clients) > 1:
            assert time.monotonic() < deadline, "the stalled client was never disconnected"
            for _ in range(50):
                bus.publish("photo.updated", {"photo": f"more{i}", "padding": padding})
                i += 1
            await bus.flush()
            await asyncio.sleep(0.05)  # not a wait: the pace of the events that keep coming
        stalled.close()
        await lively.close()

"""The thumbnail server on its own port: the same bytes and the same access rules as
/api/v1/t/... on the API port, HTTP/1.1 done right (keep-alive, pipelining in order, HEAD, 304),
limits that close abusive connections, and `shoebox serve` wiring (status, a busy port)."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest

from daemon.api.keys import THUMB_SERVER
from daemon.api.thumbserver import ThumbServer
from daemon.auth.roles import Role
from daemon.library.thumbnails import ThumbSettings, thumb_path
from tests.integration.api_support import (Daemon, add_user, api, auth, clone, create_admin,
                                           http_json, login, photo_ids, settings)
from tests.integration.support import make_config
from tests.waiting import wait_until_async


@asynccontextmanager
async def thumb_api(copy: tuple[Path, Path], **timeouts: float) -> AsyncIterator[tuple[Any, Any, ThumbServer, str]]:
    """(app, API client, started thumbnail server, its base URL) over one indexed library."""
    async with api(make_config(*copy, **settings())) as (app, client):
        server: ThumbServer = client.server.app[THUMB_SERVER]
        for name, value in timeouts.items():
            setattr(server, name, value)
        await server.start("127.0.0.1", 0)
        try:
            yield app, client, server, f"http://127.0.0.1:{server.port}"
        finally:
            await server.stop()


async def raw_exchange(port: int, payload: bytes, *, read_for: float = 3.0) -> bytes:
    """Send bytes as they are and read until the server closes or read_for seconds pass."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    chunks = []
    try:
        async with asyncio.timeout(read_for):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
    except TimeoutError:
        pass
    writer.close()
    return b"".join(chunks)


def split_answers(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """HTTP/1.1 answers in a byte stream, by Content-Length (status, headers, body)."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        n = int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:n]))
        raw = rest[n:]
    return out


async def test_the_thumbnail_port_sends_what_the_api_sends_under_the_same_rules(copy: tuple[Path, Path]) -> None:
    data = copy[1]
    async with thumb_api(copy) as (app, client, server, base):
        await add_user(app, "ann", Role.VIEWER)
        tokens = await login(client, "ann")
        key = await app.db.scalar("SELECT thumb_key FROM photos WHERE uid = ?", ((await photo_ids(app))["Canon_40D.jpg"],))
        on_disk = thumb_path(data / "thumbs", key, "tile_224", ThumbSettings()).read_bytes()
        url = f"{base}/api/v1/t/{key}/tile_224"
        async with aiohttp.ClientSession() as http:
            async with http.get(url, params={"t": tokens["thumb_token"]}) as r:
                assert r.status == 200 and await r.read() == on_disk
                assert r.headers["Content-Type"] == "image/jpeg"
                assert r.headers["Cache-Control"] == "private, max-age=31536000, immutable"
                etag = r.headers["ETag"]
            api_answer = await client.get(f"/api/v1/t/{key}/tile_224", params={"t": tokens["thumb_token"]})
            assert await api_answer.read() == on_disk and api_answer.headers["ETag"] == etag
            # the second time it comes from memory, without asking the database about the token
            before = server.status()["served_from_memory"]
            async with http.get(url, params={"t": tokens["thumb_token"]}) as r:
                assert r.status == 200 and await r.read() == on_disk
            assert server.status()["served_from_memory"] == before + 1
            async with http.get(url, params={"t": tokens["thumb_token"]}, headers={"If-None-Match": etag}) as r:
                assert r.status == 304 and await r.read() == b""
            async with http.head(url, params={"t": tokens["thumb_token"]}) as r:
                assert r.status == 200 and int(r.headers["Content-Length"]) == len(on_disk)
            async with http.get(url, headers=auth(tokens)) as r:  # an access token as a header
                assert r.status == 200 and await r.read() == on_disk

            # the refusals the API gives, in its JSON shape
            async def refused(u: str, status: int, **kw: Any) -> dict[str, Any]:
                async with http.request(kw.pop("method", "GET"), u, **kw) as r:
                    assert r.status == status, (u, r.status, await r.text())
                    body = json.loads(await r.read())
                    assert set(body) == {"error", "message", "details"}
                    return body
            assert "log in" in (await refused(url, 401))["message"]
            await refused(url, 401, params={"t": "forged.token.value"})
            await refused(url, 401, params={"t": tokens["access_token"]})  # an access token is not for URLs
            admin_app_token = await (await client.post("/api/v1/auth/tokens", headers=auth(tokens),
                                                       json={"name": "all", "scopes": ["read", "thumbnails"]})).json()
            await refused(url, 401, params={"t": admin_app_token["token"]})  # only thumbnails-only tokens in URLs
            await refused(f"{base}/api/v1/t/{'0' * 40}/tile_224", 404, params={"t": tokens["thumb_token"]})
            assert "size" in (await refused(f"{base}/api/v1/t/{key}/tile_9999", 400,
                                            params={"t": tokens["thumb_token"]}))["message"]
            await refused(f"{base}/api/v1/t/..%2f..%2fshoebox.db/tile_224", 400, params={"t": tokens["thumb_token"]})
            await refused(f"{base}/api/v1/photos", 404, params={"t": tokens["thumb_token"]})
            await refused(url, 405, method="DELETE", params={"t": tokens["thumb_token"]})

            # a size nobody asked for yet is made once for six requests at once
            big = thumb_path(data / "thumbs", key, "fit_2560", ThumbSettings())
            assert not big.exists()
            answers = await asyncio.gather(*[http.get(f"{base}/api/v1/t/{key}/fit_2560",
                                                      params={"t": tokens["thumb_token"]}) for _ in range(6)])
            bodies = [await a.read() for a in answers]
            assert [a.status for a in answers] == [200] * 6
            assert all(b == big.read_bytes() for b in bodies)
            assert not [p for p in big.parent.iterdir() if ".tmp" in p.name]


async def test_a_logout_ends_thumbnail_access_at_once(copy: tuple[Path, Path]) -> None:
    async with thumb_api(copy) as (app, client, server, base):
        await add_user(app, "ann", Role.USER)
        tokens = await login(client, "ann")
        key = await app.db.scalar("SELECT thumb_key FROM photos LIMIT 1")
        url = f"{base}/api/v1/t/{key}/tile_224?t={tokens['thumb_token']}"
        async with aiohttp.ClientSession() as http:
            for _ in range(2):  # the second answer comes from the remembered grant
                async with http.get(url) as r:
                    assert r.status == 200
            assert (await client.post("/api/v1/auth/logout", headers=auth(tokens))).status == 204
            async with http.get(url) as r:
                assert r.status == 401


async def test_keep_alive_and_pipelined_requests_are_answered_in_order(copy: tuple[Path, Path]) -> None:
    data = copy[1]
    async with thumb_api(copy) as (app, client, server, base):
        await add_user(app, "ann", Role.VIEWER)
        token = (await login(client, "ann"))["thumb_token"]
        keys = [r[0] for r in await app.db.fetchall("SELECT thumb_key FROM photos ORDER BY id LIMIT 3")]
        wanted = [(keys[0], "tile_224"), (keys[1], "fit_720"), ("f" * 40, "tile_224"), (keys[2], "tile_224"),
                  (keys[0], "fit_720")]
        # five requests in one write, the last one asking to close: a slow one (fit_720 read from
        # disk) must not be overtaken by the fast ones behind it
        payload = b"".join(f"GET /api/v1/t/{k}/{s}?t={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()
                           for (k, s), extra in zip(wanted, ["", "", "", "", "Connection: close\r\n"]))
        answers = split_answers(await raw_exchange(server.port, payload))
        assert [a[0] for a in answers] == [200, 200, 404, 200, 200]
        for (k, s), (status, headers, body) in zip(wanted, answers):
            if status == 200:
                assert body == thumb_path(data / "thumbs", k, s, ThumbSettings()).read_bytes()
        assert answers[-1][1].get("connection") == "close"


async def test_thumbnails_too_big_for_memory_go_out_with_sendfile_in_order(copy: tuple[Path, Path]) -> None:
    data = copy[1]
    async with thumb_api(copy) as (app, client, server, base):
        server.thumbnails.cache.max_item = 1024  # every thumbnail counts as big here
        await add_user(app, "ann", Role.VIEWER)
        token = (await login(client, "ann"))["thumb_token"]
        keys = [r[0] for r in await app.db.fetchall("SELECT thumb_key FROM photos ORDER BY id LIMIT 2")]
        wanted = [(keys[0], "fit_720"), (keys[1], "tile_224"), (keys[0], "tile_224")]
        files = [thumb_path(data / "thumbs", k, s, ThumbSettings()) for k, s in wanted]
        payload = b"".join(f"GET /api/v1/t/{k}/{s}?t={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()
                           for (k, s), extra in zip(wanted, ["", "", "Connection: close\r\n"]))
        answers = split_answers(await raw_exchange(server.port, payload))
        assert [a[0] for a in answers] == [200, 200, 200]
        assert [a[2] for a in answers] == [f.read_bytes() for f in files]
        assert len(server.thumbnails.cache) == 0 and server.status()["served_from_memory"] == 0
        async with aiohttp.ClientSession() as http:
            async with http.head(f"{base}/api/v1/t/{keys[0]}/fit_720", params={"t": token}) as r:
                assert r.status == 200 and int(r.headers["Content-Length"]) == files[0].stat().st_size
                etag = r.headers["ETag"]
            async with http.get(f"{base}/api/v1/t/{keys[0]}/fit_720", params={"t": token},
                                headers={"If-None-Match": etag}) as r:
                assert r.status == 304


async def test_abusive_requests_get_an_error_and_a_closed_connection(copy: tuple[Path, Path]) -> None:
    async with thumb_api(copy, header_timeout=0.5, idle_timeout=1.0) as (app, client, server, base):
        port = server.port
        assert port is not None
        huge = b"GET /api/v1/t/abc/tile_224 HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"a" * 200)
                                                                        for i in range(60)) + b"\r\n"
        status, _, body = split_answers(await raw_exchange(port, huge))[0]
        assert status == 431 and json.loads(body)["error"] == "headers_too_large"
        with_body = b"POST /api/v1/t/abc/tile_224 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
        assert split_answers(await raw_exchange(port, with_body))[0][0] == 400
        garbage = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n"  # e.g. TLS spoken to it
        assert split_answers(await raw_exchange(port, garbage))[0][0] == 400
        long_url = b"GET /api/v1/t/" + b"a" * 5000 + b"/tile_224 HTTP/1.1\r\n\r\n"
        assert split_answers(await raw_exchange(port, long_url))[0][0] == 414
        # slow-loris: half a request, then nothing: 408 after the header timeout, then closed
        started = asyncio.get_running_loop().time()
        raw = await raw_exchange(port, b"GET /api/v1/t/abc/tile_224 HTTP/1.1\r\nHost: 127.0.0.1\r\n", read_for=5)
        assert split_answers(raw)[0][0] == 408
        assert asyncio.get_running_loop().time() - started < 4
        # an idle keep-alive connection is closed; the server keeps no connection around
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()
        await wait_until_async(lambda: server.status()["connections"] == 0, 5, what="the server to forget the connection")


@pytest.mark.slow
def test_serve_starts_the_thumbnail_server_and_survives_a_busy_port(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    library, data = clone(indexed, tmp_path)
    create_admin(library, data)
    daemon = Daemon(library, data)
    with daemon:
        token = daemon.login()["access_token"]
        status, body = http_json("GET", f"{daemon.base}/api/v1/status", token=token)
        assert status == 200 and body["thumbnail_server"]["port"] == daemon.thumbs_port
        status, health = http_json("GET", f"{daemon.thumbs_base}/api/v1/health")
        assert status == 404 and "only serves thumbnails" in health["message"]
    # someone else has the thumbnail port: the daemon still starts and serves thumbnails on its API port
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        daemon = Daemon(library, data, "--server-thumbnail-port", str(busy.getsockname()[1]))
        with daemon:
            tokens = daemon.login()
            status, body = http_json("GET", f"{daemon.base}/api/v1/status", token=tokens["access_token"])
            assert body["thumbnail_server"]["port"] is None
            photo = http_json("GET", f"{daemon.base}/api/v1/photos?limit=1", token=tokens["access_token"])[1]["photos"][0]
            with urllib.request.urlopen(f"{daemon.base}/api/v1/t/{photo['thumb_key']}/tile_224"
                                        f"?t={tokens['thumb_token']}", timeout=10) as r:
                assert r.status == 200 and r.read()[:2] == b"\xff\xd8"
    finally:
        busy.close()

"""Issue 9, point 3: a query costs a bounded amount.

Attacks as a client makes them, against a real App (real SQLite file, real loopback sockets):
several smart albums (which used to answer 500 from the second one on and leave the reader
failing for everyone), smart albums that name other smart albums until the expansion explodes,
and searches built to be slow, while another client searches and writes beside them.
"""

from __future__ import annotations

import asyncio
import string
import time
from pathlib import Path
from typing import Any

import pytest

from daemon.auth.roles import Role
from daemon.search import FACETS
from tests.bench.bench_search import generate
from tests.integration.api_support import add_user, api, auth, clone, login, settings
from tests.integration.support import make_config

ALBUMS = "/api/v1/albums"
PHOTOS = "/api/v1/photos"


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30,000-photo library database (the search benchmark's generator: real schema, real FTS
    index), big enough that a query built to be slow takes seconds when nothing stops it."""
    path = tmp_path_factory.mktemp("big") / "shoebox.db"
    generate(path, 30_000)
    return path


async def _smart(client: Any, h: dict[str, str], title: str, query: str) -> Any:
    return await client.post(ALBUMS, json={"title": title, "query": query}, headers=h)


async def test_album_list_answers_with_several_smart_albums_and_readers_stay_well(indexed: tuple[Path, Path],
                                                                                  tmp_path: Path) -> None:
    copy = clone(indexed, tmp_path)
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        await add_user(app, "bob", Role.VIEWER)
        h, hb = auth(await login(client, "ann")), auth(await login(client, "bob"))
        for title, q in (("Canon", "camera:canon"), ("Recent", "year:2000-2030"), ("Italy", "country:it")):
            r = await _smart(client, h, title, q)
            assert r.status == 201, await r.text()
        r = await client.post(ALBUMS, json={"title": "Hand made"}, headers=h)
        assert r.status == 201

        async def other_reader() -> list[int]:
            return [(await client.get(PHOTOS, params={"q": "year:2008"}, headers=hb)).status for _ in range(5)]

        listing, others = await asyncio.gather(client.get(ALBUMS, headers=h), other_reader())
        assert listing.status == 200, await listing.text()
        albums = {a["title"]: a for a in await listing.json()}
        assert albums["Recent"]["photo_count"] == 5 and albums["Canon"]["photo_count"] == 1
        assert albums["Italy"]["photo_count"] == 1 and albums["Italy"]["cover"] is not None
        assert others == [200] * 5
        # right after, every reader still answers, for everyone, every time
        for _ in range(4):
            r = await client.get(PHOTOS, headers=hb)
            assert r.status == 200 and len((await r.json())["photos"]) == 5
            assert (await client.get(ALBUMS, headers=hb)).status == 200


async def test_smart_album_chains_and_fan_outs_are_refused_with_the_reason(indexed: tuple[Path, Path],
                                                                           tmp_path: Path) -> None:
    copy = clone(indexed, tmp_path)
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.USER)
        h = auth(await login(client, "ann"))
        # fan-out: twenty smart albums share a title; one album naming that title would expand all
        assert (await _smart(client, h, "leaf", "year:2000-2030")).status == 201
        for i in range(20):
            assert (await _smart(client, h, "fan", "album:leaf")).status == 201
        started = time.monotonic()
        r = await _smart(client, h, "top", "album:fan")
        body = await r.json()
        assert r.status == 400 and "smart album expansions" in body["message"], body
        assert body["details"]["field"] == "query.album"
        # the same bomb typed as a search is refused the same way, quickly
        r = await client.get(PHOTOS, params={"q": "album:fan"}, headers=h)
        body = await r.json()
        assert r.status == 400 and body["error"] == "bad_query" and "smart album expansions" in body["message"]
        assert time.monotonic() - started < 10

        # a chain deeper than three smart albums
        previous = "leaf"
        for name in ("c1", "c2", "c3"):
            assert (await _smart(client, h, name, f"album:{previous}")).status == 201, name
            previous = name
        r = await _smart(client, h, "c4", "album:c3")
        body = await r.json()
        assert r.status == 400 and "nested more than 3 deep" in body["message"], body

        # a bomb assembled afterwards (the album it names grows later) is refused when it runs,
        # and the album list still answers, with that album uncounted rather than failing
        r = await _smart(client, h, "grows", "album:leaf")
        grows = (await r.json())["id"]
        r = await client.patch(f"{ALBUMS}/{grows}", json={"query": "album:fan"}, headers=h)
        assert r.status == 400 and "smart album expansions" in (await r.json())["message"]
        mid = (await (await _smart(client, h, "mid", "album:leaf")).json())["id"]
        assert (await _smart(client, h, "outer", "album:mid")).status == 201
        await app.db.execute_write("UPDATE albums SET query = 'album:fan' WHERE uid = ?", (mid,))
        r = await client.get(PHOTOS, params={"q": "album:outer"}, headers=h)
        body = await r.json()
        assert r.status == 400 and body["message"].startswith("query too expensive: "), body
        listing = await client.get(ALBUMS, headers=h)
        assert listing.status == 200, await listing.text()
        counts = {a["title"]: a["photo_count"] for a in await listing.json()}
        assert counts["outer"] is None and counts["leaf"] == 5 and counts["c3"] == 5
        # shared, such an album answers its guests 400 with the reason on every route, never 500
        outer = next(a["id"] for a in await listing.json() if a["title"] == "outer")
        token = (await (await client.post("/api/v1/shares", json={"album": outer}, headers=h)).json())["token"]
        photo = (await (await client.get(PHOTOS, headers=h)).json())["photos"][0]
        for path in (f"/api/v1/s/{token}", f"/api/v1/s/{token}/photos/{photo['id']}",
                     f"/api/v1/s/{token}/t/{photo['thumb_key']}/tile_224"):
            r = await client.get(path)
            assert r.status == 400 and "query too expensive" in (await r.json())["message"], path

        # too many alternatives or prefix words: refused before any SQL runs
        for q, why in (("|".join(string.ascii_lowercase[i % 26] for i in range(500)), "too many alternatives"),
                       (" ".join(f"{c}*" for c in string.ascii_lowercase), "prefix words"),
                       (" ".join(f"label:x{i}|y{i}|z{i}" for i in range(60)), "too many terms")):
            started = time.monotonic()
            r = await client.get(PHOTOS, params={"q": q}, headers=h)
            body = await r.json()
            assert r.status == 400 and why in body["message"], (q[:30], body)
            assert time.monotonic() - started < 2


# allowed by every structural bound (16 + 16 alternatives, 4 prefix words), yet on 30,000 photos
# in random order with every facet it runs for seconds when nothing stops it
SLOW = ("-label:a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p -person:a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p e*|a*|i*|o*")


async def test_a_slow_query_is_stopped_and_others_keep_answering(big_store: Path, tmp_path: Path) -> None:
    library, data = tmp_path / "library", tmp_path / "data"
    library.mkdir()
    data.mkdir()
    (data / "shoebox.db").write_bytes(big_store.read_bytes())
    config = make_config(library, data, **settings(index__scan_on_start="false", index__watch="false",
                                                     search__max_seconds="0.5"))
    async with api(config) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        await add_user(app, "eve", Role.VIEWER)
        h, he = auth(await login(client, "ann")), auth(await login(client, "eve"))
        attack = {"q": SLOW, "order": "random", "facets": ",".join(FACETS), "limit": "100"}
        answers: list[tuple[int, float, str]] = []
        stop = asyncio.Event()

        async def attacker() -> None:
            while not stop.is_set():
                started = time.monotonic()
                r = await client.get(PHOTOS, params=attack, headers=he)
                answers.append((r.status, time.monotonic() - started, (await r.json()).get("message", "")))

        attackers = [asyncio.create_task(attacker()) for _ in range(3)]
        try:
            await asyncio.sleep(0)  # the attack is under way before the owner's first request
            simple: list[float] = []
            for i in range(6):
                started = time.monotonic()
                r = await client.get(PHOTOS, params={"q": "", "limit": "60"}, headers=h)
                assert r.status == 200 and len((await r.json())["photos"]) == 60
                simple.append(time.monotonic() - started)
                started = time.monotonic()
                r = await client.post(ALBUMS, json={"title": f"written during the attack {i}"}, headers=h)
                assert r.status == 201
                simple.append(time.monotonic() - started)
        finally:
            stop.set()
            await asyncio.gather(*attackers)
        assert answers, "the attack made no request"
        for status, took, message in answers:
            assert status == 400 and "query too expensive" in message, (status, message)
            assert took < 4.0, f"a refused query still took {took:.1f} s"
        assert max(simple) < 2.5, f"the owner's requests took up to {max(simple):.1f} s during the attack"
        # the same query, narrowed, is answered
        r = await client.get(PHOTOS, params={"q": "e*|a*", "limit": "10"}, headers=he)
        assert r.status == 200

"""What the web app reads, over a real indexed library: month buckets and a month's photos, map
clusters, points and the photos of a cluster, search-box completions; and how the app itself is
served (cache headers, security headers, client routes, no build) and keeps its refresh token.

The library (see api_support.SAMPLE_PHOTOS and the views test): four camera photos of 2007-2008,
two Tuscan GPS photos of 2008-10 (DSCN0010, DSCN0021) and a Fujifilm photo of 2006-08.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from daemon.auth.roles import Role
from tests.conftest import copy_sample
from tests.integration.api_support import SAMPLE_PHOTOS, add_user, api, auth, clone, login, photo_ids, settings
from tests.integration.support import index, make_config, query


@pytest.fixture(scope="module")
def indexed(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("timeline")
    library, data = root / "library", root / "data"
    for rel in SAMPLE_PHOTOS:
        copy_sample(samples, rel, library / ("gps" if "/gps/" in rel else "camera"))
    copy_sample(samples, "exif-samples/jpg/gps/DSCN0021.jpg", library / "gps")
    copy_sample(samples, "exif-samples/jpg/Fujifilm_FinePix_E500.jpg", library / "trips")
    asyncio.run(index(make_config(library, data, **settings())))
    return library, data


@pytest.fixture
def copy(indexed: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    return clone(indexed, tmp_path)


def _web_build(root: Path) -> Path:
    """A stand-in for web/dist with the files a Vite build makes."""
    dist = root / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text('<!doctype html><title>Shoebox</title><script type="module" src="/assets/index-abc123.js"></script>')
    (dist / "assets" / "index-abc123.js").write_text("console.log('app')")
    (dist / "sw.js").write_text("self.addEventListener('fetch', () => {})")
    (dist / "manifest.webmanifest").write_text('{"name": "Shoebox"}')
    (dist / "icon-192.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return dist


async def test_month_buckets_count_the_whole_library_and_each_month_lists_its_photos(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "vera", Role.VIEWER)
        h = auth(await login(client, "vera"))
        r = await client.get("/api/v1/timeline/months", headers=h)
        assert r.status == 200
        body = await r.json()
        months = [(m["month"], m["count"]) for m in body["months"]]
        assert months == sorted(months, reverse=True), "newest first"
        assert body["total"] == sum(c for _, c in months) + body["undated"]
        stored = query(copy[1], "SELECT count(*) FROM photos WHERE primary_file_id IS NOT NULL")[0][0]
        assert body["total"] == stored
        assert ("2008-10", 2) in months and ("2006-08", 1) in months
        # each month's photos are the ones counted, newest first, with what a grid needs
        for month, count in months:
            page = await (await client.get(f"/api/v1/timeline/months/{month}", headers=h)).json()
            assert len(page["photos"]) == count
            taken = [p["taken_at"] for p in page["photos"]]
            assert taken == sorted(taken, reverse=True) and all(t.startswith(month) for t in taken)
            assert all(p["width"] and p["height"] and p["thumb_key"] and p["placeholder"] for p in page["photos"])
        # a filtered timeline is the search's photos
        only = await (await client.get("/api/v1/timeline/months", params={"q": "year:2008"}, headers=h)).json()
        assert {m["month"][:4] for m in only["months"]} == {"2008"}
        # archived photos leave the timeline, as they leave a search
        ids = await photo_ids(app)
        editor = auth(await login(client, "vera"))
        await add_user(app, "ann", Role.USER)
        editor = auth(await login(client, "ann"))
        assert (await client.post(f"/api/v1/photos/{ids['Fujifilm_FinePix_E500.jpg']}/archive", headers=editor)).status == 200
        after = await (await client.get("/api/v1/timeline/months", headers=h)).json()
        assert "2006-08" not in [m["month"] for m in after["months"]] and after["total"] == body["total"] - 1


async def test_timeline_refuses_bad_months_and_bad_queries_with_a_message(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "vera", Role.VIEWER)
        h = auth(await login(client, "vera"))
        for bad in ("2008-13", "08-10", "2008-1"):
            r = await client.get(f"/api/v1/timeline/months/{bad}", headers=h)
            assert r.status == 422, bad  # the API's answer to a malformed parameter
        r = await client.get("/api/v1/timeline/months", params={"q": "contry:it"}, headers=h)
        assert r.status == 400
        err = await r.json()
        assert err["details"]["field"] == "contry" and "contry" in err["message"]
        assert (await client.get("/api/v1/timeline/months")).status == 401
        empty = await (await client.get("/api/v1/timeline/months/1999-01", headers=h)).json()
        assert empty == {"month": "1999-01", "photos": []}


async def test_map_clusters_points_and_the_photos_of_a_cluster(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "vera", Role.VIEWER)
        h = auth(await login(client, "vera"))
        ids = await photo_ids(app)
        geotagged = {ids[n] for n in ("DSCN0010.jpg", "DSCN0021.jpg")}
        world = await (await client.get("/api/v1/map/clusters", params={"zoom": "1"}, headers=h)).json()
        assert world["count"] == 2 and len(world["clusters"]) == 1, "two photos in Tuscany are one cluster at zoom 1"
        cluster = world["clusters"][0]
        assert cluster["count"] == 2 and 43 < cluster["lat"] < 44 and 11 < cluster["lng"] < 12
        west, south, east, north = cluster["bounds"]
        inside = await (await client.get("/api/v1/map/photos", headers=h, params={
            "west": west, "south": south, "east": east, "north": north})).json()
        assert {p["id"] for p in inside["photos"]} == geotagged
        points = await (await client.get("/api/v1/map/points", headers=h)).json()
        assert points["truncated"] is False and {p[0] for p in points["points"]} == geotagged
        assert all(len(p) == 4 and p[3] for p in points["points"])
        capped = await (await client.get("/api/v1/map/points", params={"limit": "1"}, headers=h)).json()
        assert capped["truncated"] is True and capped["count"] == 1
        # a viewport elsewhere has nothing; one across the antimeridian is understood
        away = await (await client.get("/api/v1/map/clusters", headers=h, params={
            "zoom": "5", "west": "170", "east": "-170", "south": "-10", "north": "10"})).json()
        assert away["count"] == 0
        r = await client.get("/api/v1/map/clusters", headers=h, params={"south": "50", "north": "10"})
        assert r.status == 400 and "viewport" in (await r.json())["message"]


async def test_search_suggestions_offer_filters_and_values(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "vera", Role.VIEWER)
        h = auth(await login(client, "vera"))

        async def suggest(prefix: str) -> list[dict]:
            r = await client.get("/api/v1/search/suggest", params={"prefix": prefix}, headers=h)
            assert r.status == 200
            return (await r.json())["suggestions"]

        filters = await suggest("lab")
        assert filters[0]["kind"] == "filter" and filters[0]["insert"] == "label:" and filters[0]["help"]
        cameras = await suggest("camera:can")
        assert [s["insert"] for s in cameras] == ['camera:"Canon EOS 40D"']
        places = await suggest("city:")
        assert places and all(s["kind"] == "place" for s in places)
        country = await suggest("country:it")
        assert [s["value"] for s in country] == ["Italy"]
        assert await suggest("nosuchfilter:x") == []
        # what a suggestion inserts is a query the API accepts and that finds photos
        found = await (await client.get("/api/v1/photos", params={"q": cameras[0]["insert"]}, headers=h)).json()
        assert len(found["photos"]) == 1


async def test_the_web_app_is_served_with_cache_and_security_headers(copy: tuple[Path, Path], tmp_path: Path) -> None:
    dist = _web_build(tmp_path)
    async with api(make_config(*copy, **settings(server__web_root=str(dist)))) as (app, client):
        index_page = await client.get("/")
        assert index_page.status == 200 and "<title>Shoebox</title>" in await index_page.text()
        assert index_page.headers["Cache-Control"] == "no-cache"
        csp = index_page.headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
        assert index_page.headers["Referrer-Policy"] == "same-origin"
        asset = await client.get("/assets/index-abc123.js")
        assert asset.status == 200 and "immutable" in asset.headers["Cache-Control"]
        for entry in ("/sw.js", "/manifest.webmanifest"):
            r = await client.get(entry)
            assert r.status == 200 and r.headers["Cache-Control"] == "no-cache", entry
        assert (await client.get("/manifest.webmanifest")).content_type == "application/manifest+json"
        # a client-side route (a reload or a bookmark) opens the app; a missing asset is a 404
        for route in ("/albums", "/search?q=label:cat", "/photo/abc", "/s/sometoken"):
            r = await client.get(route)
            assert r.status == 200 and "<title>Shoebox</title>" in await r.text(), route
        assert (await client.get("/assets/missing-000.js")).status == 404
        # nothing outside the build is reachable, however the path is spelled
        for sneaky in ("/%2e%2e/%2e%2e/data/shoebox.db", "/assets/%2e%2e/%2e%2e/secret.key", "/..%2fsecret.key"):
            r = await client.get(sneaky)
            assert r.status == 404, sneaky
        api_404 = await client.get("/api/v1/nothing-here")
        assert api_404.status == 404 and (await api_404.json())["error"]
        health = await (await client.get("/api/v1/health")).json()
        assert health["status"] == "ok" and "thumbnail_port" in health


async def test_the_app_and_big_json_answers_travel_compressed(copy: tuple[Path, Path], tmp_path: Path) -> None:
    """A phone downloads the pre-compressed build and gzip-compressed lists; a client that asks for
    nothing compressed gets the same bytes plain, and tokens are never compressed."""
    import gzip as gz

    dist = _web_build(tmp_path)
    script = "console.log('a build of the app');\n" * 200
    (dist / "assets" / "index-abc123.js").write_text(script)
    (dist / "assets" / "index-abc123.js.gz").write_bytes(gz.compress(script.encode()))
    async with api(make_config(*copy, **settings(server__web_root=str(dist)))) as (app, client):
        packed = await client.get("/assets/index-abc123.js", headers={"Accept-Encoding": "gzip"})
        assert packed.headers.get("Content-Encoding") == "gzip" and await packed.text() == script
        assert "immutable" in packed.headers["Cache-Control"]
        plain = await client.get("/assets/index-abc123.js", headers={"Accept-Encoding": "identity"})
        assert "Content-Encoding" not in plain.headers and await plain.text() == script

        await add_user(app, "vera", Role.VIEWER)
        h = auth(await login(client, "vera"))
        listed = await client.get("/api/v1/photos", params={"limit": "100"}, headers={**h, "Accept-Encoding": "gzip"})
        body = await listed.read()  # the client undoes the gzip
        assert len(body) >= 1400, "the sample list is too small to prove anything"
        assert listed.headers.get("Content-Encoding") == "gzip"
        same = await client.get("/api/v1/photos", params={"limit": "100"}, headers={**h, "Accept-Encoding": "identity"})
        assert "Content-Encoding" not in same.headers and await same.read() == body
        tokens = await client.post("/api/v1/auth/login", json={"username": "vera", "password": "correct horse battery"},
                                   headers={"Accept-Encoding": "gzip"})
        assert tokens.status == 200 and "Content-Encoding" not in tokens.headers


async def test_without_a_build_the_api_works_and_the_root_says_how_to_build(copy: tuple[Path, Path], tmp_path: Path) -> None:
    async with api(make_config(*copy, **settings(server__web_root=str(tmp_path / "nothing")))) as (app, client):
        r = await client.get("/")
        assert r.status == 503 and "make web" in await r.text()
        assert (await client.get("/api/v1/health")).status == 200


async def test_login_keeps_the_refresh_token_in_an_httponly_cookie_for_the_web_app(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "vera", Role.VIEWER)
        r = await client.post("/api/v1/auth/login", json={"username": "vera", "password": "correct horse battery",
                                                          "refresh_in": "cookie"})
        assert r.status == 200
        tokens = await r.json()
        assert tokens["refresh_token"] == "" and tokens["access_token"]
        cookie = r.headers["Set-Cookie"]
        assert "shoebox_refresh=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Path=/api/v1/auth" in cookie
        # a reload: no token in the page, the cookie alone restores the session (and rotates)
        again = await client.post("/api/v1/auth/refresh", json={})
        assert again.status == 200
        fresh = await again.json()
        assert fresh["access_token"] and fresh["refresh_token"] == ""
        me = await client.get("/api/v1/auth/me", headers=auth(fresh))
        assert (await me.json())["name"] == "vera"
        # logout clears the cookie: a later refresh is refused
        out = await client.post("/api/v1/auth/logout", headers=auth(fresh))
        assert out.status == 204
        assert (await client.post("/api/v1/auth/refresh", json={})).status == 401

"""Finding a place by name offline (GET /api/v1/places/search) in the real GeoNames database, and
putting a photo there with the place found."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from daemon.auth.roles import Role
from tests.integration.api_support import add_user, api, auth, login, photo_ids, settings
from tests.integration.support import make_config


async def test_a_place_is_found_by_name_accents_and_case_aside(tmp_path: Path) -> None:
    (tmp_path / "library").mkdir()
    async with api(make_config(tmp_path / "library", tmp_path / "data", **settings())) as (app, client):
        await add_user(app, "vic", Role.VIEWER)
        h = auth(await login(client, "vic"))

        async def search(q: str, **params: str) -> list[dict]:
            r = await client.get("/api/v1/places/search", params={"q": q, **params}, headers=h)
            assert r.status == 200, await r.text()
            return (await r.json())["places"]

        found = await search("paris")
        assert found[0] == {"name": "Paris", "region": "Ile-de-France", "country": "France", "country_code": "FR",
                            "lat": 48.85341, "lng": 2.3488}
        assert sum(p["name"] == "Paris" and p["country_code"] == "US" for p in found) >= 5
        texas = await search("Paris, tex")
        assert [(p["name"], p["region"]) for p in texas] == [("Paris", "Texas")]
        assert (await search("PARIS, us", limit="3"))[0]["country"] == "United States"
        assert len(await search("PARIS, us", limit="3")) == 3
        assert (await search("São  Paulo"))[0]["name"] == "Sao Paulo"  # accents and spaces folded
        assert [p["name"] for p in await search("Vinhed")] == ["Vinhedo"]  # a prefix
        assert await search("Xqzzy") == []
        # a short prefix stays quick: one bounded range of the name index
        started = time.perf_counter()
        assert len(await search("a", limit="50")) == 50
        assert time.perf_counter() - started < 1.0

        r = await client.get("/api/v1/places/search", params={"q": ""}, headers=h)
        assert r.status == 422 and (await r.json())["error"]
        r = await client.get("/api/v1/places/search", params={"q": "paris", "limit": "500"}, headers=h)
        assert r.status == 422
        assert (await client.get("/api/v1/places/search", params={"q": "paris"})).status == 401


def test_the_places_database_has_a_name_index(tmp_path: Path) -> None:
    """The search reads the index, never the whole table (the query plan says so)."""
    from tests.integration.support import places_template
    conn = sqlite3.connect(f"{places_template().as_uri()}?mode=ro", uri=True)
    try:
        plan = " ".join(r[-1] for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT name FROM places WHERE key >= 'par' AND key < 'par\U0010ffff' ORDER BY key LIMIT 5"))
    finally:
        conn.close()
    assert "places_key" in plan and "SCAN places" not in plan.replace("USING INDEX", "")


async def test_a_place_found_by_name_becomes_the_photos_location(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.USER)
        h = auth(await login(client, "ann"))
        uid = (await photo_ids(app))["Canon_40D.jpg"]
        r = await client.get("/api/v1/places/search", params={"q": "Koeln"}, headers=h)
        koeln = (await r.json())["places"][0]
        r = await client.patch(f"/api/v1/photos/{uid}", json={"lat": koeln["lat"], "lng": koeln["lng"]}, headers=h)
        assert r.status == 200, await r.text()
        photo = await r.json()
        assert photo["place"]["city"] == "Koeln" and photo["place"]["country_code"] == "DE"
        assert photo["sources"]["lat"] == "manual" and photo["sources"]["place"] == "manual"

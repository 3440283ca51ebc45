"""Albums through the API as the web app uses them, against a real App on the real indexed sample
library: hand-made albums (photos added, paged, reordered, removed, the album deleted but never its
photos), smart albums (a saved search, checked when saved), events announced, and refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daemon.auth.roles import Role
from tests.integration.api_support import (add_user, api, auth, events_of, login, photo_ids,
                                           settings)
from tests.integration.support import make_config


async def titles_in_order(client: Any, h: dict[str, str], album: str, names: dict[str, str], limit: int = 100) -> list[str]:
    """The album's photos (by file name) in the order the API pages them."""
    by_uid = {v: k for k, v in names.items()}
    out: list[str] = []
    cursor = None
    while True:
        params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
        r = await client.get(f"/api/v1/albums/{album}", params=params, headers=h)
        assert r.status == 200, await r.text()
        page = await r.json()
        assert len(page["photos"]) <= limit
        out += [by_uid[p["id"]] for p in page["photos"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return out


async def test_a_hand_made_album_from_creation_to_deletion(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.USER)
        h = auth(await login(client, "ann"))
        ids = await photo_ids(app)
        canon, nikon, pentax, sony, gps = (ids[n] for n in ("Canon_40D.jpg", "Nikon_D70.jpg", "Pentax_K10D.jpg",
                                                           "Sony_HDR-HC3.jpg", "DSCN0010.jpg"))
        async with events_of(app) as seen:
            r = await client.post("/api/v1/albums", json={"title": "  Summer   trip ", "description": "Italy",
                                                          "photos": [canon, nikon, pentax]}, headers=h)
            assert r.status == 201, await r.text()
            album = await r.json()
            uid = album["id"]
            assert album["title"] == "Summer trip" and album["type"] == "album" and album["photo_count"] == 3
            assert album["cover"]["id"] == canon and not album["cover_chosen"]  # the first photo until one is chosen

            # pages of 2 with a cursor list the photos once each, in the order they were added
            assert await titles_in_order(client, h, uid, ids, limit=2) == ["Canon_40D.jpg", "Nikon_D70.jpg",
                                                                          "Pentax_K10D.jpg"]
            # more photos: new ones at the end, one already there left where it is, an unknown one reported
            r = await client.post(f"/api/v1/albums/{uid}/photos", json={"ids": [sony, canon, gps, "nosuchphoto"]},
                                  headers=h)
            assert await r.json() == {"added": [sony, gps], "already": [canon], "missing": ["nosuchphoto"]}

            # reorder: the GPS photo between Canon and Nikon; then Canon after Sony
            r = await client.post(f"/api/v1/albums/{uid}/photos/move",
                                  json={"photo": gps, "after": canon, "before": nikon}, headers=h)
            assert r.status == 200, await r.text()
            r = await client.post(f"/api/v1/albums/{uid}/photos/move", json={"photo": canon, "after": sony}, headers=h)
            assert r.status == 200
            assert await titles_in_order(client, h, uid, ids) == ["DSCN0010.jpg", "Nikon_D70.jpg", "Pentax_K10D.jpg",
                                                                 "Sony_HDR-HC3.jpg", "Canon_40D.jpg"]
            # moving to the front (before the first) works too
            r = await client.post(f"/api/v1/albums/{uid}/photos/move", json={"photo": sony, "before": gps}, headers=h)
            assert r.status == 200
            assert (await titles_in_order(client, h, uid, ids))[:2] == ["Sony_HDR-HC3.jpg", "DSCN0010.jpg"]

            # rename, describe, choose the cover
            r = await client.patch(f"/api/v1/albums/{uid}", json={"title": "Tuscany 2008", "description": "",
                                                                   "cover": pentax}, headers=h)
            changed = await r.json()
            assert r.status == 200 and changed["title"] == "Tuscany 2008" and changed["description"] is None
            assert changed["cover"]["id"] == pentax and changed["cover_chosen"]

            # the photo's own page lists the album
            detail = await (await client.get(f"/api/v1/photos/{pentax}", headers=h)).json()
            assert detail["albums"] == [{"id": uid, "title": "Tuscany 2008", "type": "album"}]
            # and the search language finds the album's photos by its title
            found = await (await client.get("/api/v1/photos", params={"q": 'album:"Tuscany 2008"'}, headers=h)).json()
            assert len(found["photos"]) == 5

            # removing the cover photo takes it out of the album, not out of the library
            r = await client.post(f"/api/v1/albums/{uid}/photos/remove", json={"ids": [pentax, "nosuchphoto"]},
                                  headers=h)
            assert await r.json() == {"removed": [pentax], "not_in_album": [], "missing": ["nosuchphoto"]}
            after = await (await client.get(f"/api/v1/albums/{uid}", headers=h)).json()
            assert after["photo_count"] == 4 and after["cover"]["id"] == sony and not after["cover_chosen"]
            assert (await client.get(f"/api/v1/photos/{pentax}", headers=h)).status == 200

            # the list shows it
            listed = await (await client.get("/api/v1/albums", headers=h)).json()
            assert [(a["id"], a["photo_count"]) for a in listed] == [(uid, 4)]

            # delete: the album goes, every photo stays
            assert (await client.delete(f"/api/v1/albums/{uid}", headers=h)).status == 204
            assert (await client.get(f"/api/v1/albums/{uid}", headers=h)).status == 404
            assert await app.db.scalar("SELECT count(*) FROM photos WHERE primary_file_id IS NOT NULL") == 5
            assert await app.db.scalar("SELECT count(*) FROM album_photos") == 0

        kinds = [(e["type"], e["data"].get("change")) for e in seen if e["type"].startswith("album.")]
        assert kinds == [("album.created", "created"), ("album.updated", "photos_added"),
                         ("album.updated", "photos_moved"), ("album.updated", "photos_moved"),
                         ("album.updated", "photos_moved"), ("album.updated", "edited"),
                         ("album.updated", "photos_removed"), ("album.deleted", "deleted")]
        assert all(e["data"]["album"] == uid for e in seen if e["type"].startswith("album."))
        assert seen[0]["data"]["photos"] == 3
        edited = next(e for e in seen if e["data"].get("change") == "edited")
        assert sorted(edited["data"]["fields"]) == ["cover", "description", "title"]


async def test_many_moves_into_one_gap_keep_the_order(copy: tuple[Path, Path]) -> None:
    """Each move takes the midpoint of its neighbours; after ~50 halvings of one gap the album is
    renumbered and the move still lands where it was asked to."""
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.USER)
        h = auth(await login(client, "ann"))
        ids = await photo_ids(app)
        a, b, c = ids["Canon_40D.jpg"], ids["Nikon_D70.jpg"], ids["Pentax_K10D.jpg"]
        uid = (await (await client.post("/api/v1/albums", json={"title": "Order", "photos": [a, b, c]},
                                        headers=h)).json())["id"]
        # alternately put b and c right after a: the gap after a halves every time
        for i in range(70):
            mover = b if i % 2 == 0 else c
            r = await client.post(f"/api/v1/albums/{uid}/photos/move", json={"photo": mover, "after": a}, headers=h)
            assert r.status == 200, await r.text()
            order = await titles_in_order(client, h, uid, ids)
            assert order[:2] == ["Canon_40D.jpg", "Nikon_D70.jpg" if mover == b else "Pentax_K10D.jpg"], i
        positions = [r[0] for r in await app.db.fetchall(
            "SELECT position FROM album_photos ap JOIN albums al ON al.id = ap.album_id WHERE al.uid = ?"
            " ORDER BY position", (uid,))]
        assert len(set(positions)) == 3
        assert positions[1] - positions[0] > 1e-9  # renumbered, not run out of precision


async def test_a_smart_album_is_a_saved_search_checked_when_saved(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.USER)
        h = auth(await login(client, "ann"))
        ids = await photo_ids(app)
        # a typo in the query answers 400 naming the filter, and no album is made
        r = await client.post("/api/v1/albums", json={"title": "Oops", "query": "contry:it"}, headers=h)
        body = await r.json()
        assert r.status == 400 and "contry" in body["message"] and body["details"]["field"].startswith("query")
        r = await client.post("/api/v1/albums", json={"title": "Oops", "query": "iso:lots"}, headers=h)
        assert r.status == 400 and "iso" in (await r.json())["message"]
        assert await app.db.scalar("SELECT count(*) FROM albums") == 0

        async with events_of(app) as seen:
            r = await client.post("/api/v1/albums", json={"title": "Italy", "query": "country:it"}, headers=h)
            assert r.status == 201
            smart = await r.json()
        assert smart["type"] == "smart" and smart["query"] == "country:it" and smart["photo_count"] == 1
        assert seen and seen[0]["type"] == "album.created" and seen[0]["data"]["type"] == "smart"
        page = await (await client.get(f"/api/v1/albums/{smart['id']}", headers=h)).json()
        assert [p["id"] for p in page["photos"]] == [ids["DSCN0010.jpg"]]
        # its photos come from the query: none can be added or moved by hand
        r = await client.post(f"/api/v1/albums/{smart['id']}/photos", json={"ids": [ids["Canon_40D.jpg"]]}, headers=h)
        assert r.status == 400 and "query" in (await r.json())["message"]
        # a new query: checked too, then the photos follow it
        r = await client.patch(f"/api/v1/albums/{smart['id']}", json={"query": "camera:nikon|canon year:"}, headers=h)
        assert r.status == 400
        r = await client.patch(f"/api/v1/albums/{smart['id']}", json={"query": "camera:nikon", "sort_order": "oldest"},
                               headers=h)
        assert r.status == 200 and (await r.json())["photo_count"] == 2
        page = await (await client.get(f"/api/v1/albums/{smart['id']}", params={"limit": "1"}, headers=h)).json()
        second = await (await client.get(f"/api/v1/albums/{smart['id']}",
                                         params={"limit": "1", "cursor": page["next_cursor"]}, headers=h)).json()
        got = [page["photos"][0]["id"], second["photos"][0]["id"]]
        assert set(got) == {ids["Nikon_D70.jpg"], ids["DSCN0010.jpg"]} and second["next_cursor"] is None
        dates = [p["taken_at"] for p in (page["photos"][0], second["photos"][0])]
        assert dates == sorted(dates)  # oldest first, as asked
        # the same album answers album:<id> in a search; a hand-made album cannot get a query
        found = await (await client.get("/api/v1/photos", params={"q": f"album:{smart['id']}"}, headers=h)).json()
        assert {p["id"] for p in found["photos"]} == set(got)
        plain = await (await client.post("/api/v1/albums", json={"title": "Plain"}, headers=h)).json()
        r = await client.patch(f"/api/v1/albums/{plain['id']}", json={"query": "year:2008"}, headers=h)
        assert r.status == 400 and (await r.json())["details"]["field"] == "query"
        r = await client.patch(f"/api/v1/albums/{smart['id']}", json={"sort_order": "position"}, headers=h)
        assert r.status == 400


async def test_refusals_viewer_unknown_albums_and_bad_input(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.USER)
        await add_user(app, "vera", Role.VIEWER)
        user, viewer = auth(await login(client, "ann")), auth(await login(client, "vera"))
        ids = await photo_ids(app)
        canon, nikon = ids["Canon_40D.jpg"], ids["Nikon_D70.jpg"]
        album = await (await client.post("/api/v1/albums", json={"title": "Mine", "photos": [canon, nikon]},
                                         headers=user)).json()
        uid = album["id"]
        # a viewer sees albums but changes nothing
        assert (await client.get("/api/v1/albums", headers=viewer)).status == 200
        assert (await client.get(f"/api/v1/albums/{uid}", headers=viewer)).status == 200
        for method, path, body in [
            ("POST", "/api/v1/albums", {"title": "Viewer's"}),
            ("PATCH", f"/api/v1/albums/{uid}", {"title": "Taken over"}),
            ("DELETE", f"/api/v1/albums/{uid}", None),
            ("POST", f"/api/v1/albums/{uid}/photos", {"ids": [ids["Sony_HDR-HC3.jpg"]]}),
            ("POST", f"/api/v1/albums/{uid}/photos/remove", {"ids": [canon]}),
            ("POST", f"/api/v1/albums/{uid}/photos/move", {"photo": nikon, "before": canon}),
        ]:
            r = await client.request(method, path, json=body, headers=viewer)
            assert r.status == 403, f"viewer {method} {path}: {r.status}"
        after = await (await client.get(f"/api/v1/albums/{uid}", headers=viewer)).json()
        assert after["title"] == "Mine" and [p["id"] for p in after["photos"]] == [canon, nikon]
        assert await app.db.scalar("SELECT count(*) FROM albums") == 1
        # without credentials: 401
        assert (await client.get(f"/api/v1/albums/{uid}")).status == 401

        # unknown album: 404 everywhere
        for method, path, body in [("GET", "/api/v1/albums/nosuch", None), ("PATCH", "/api/v1/albums/nosuch",
                                   {"title": "x"}), ("DELETE", "/api/v1/albums/nosuch", None),
                                   ("POST", "/api/v1/albums/nosuch/photos", {"ids": [canon]})]:
            r = await client.request(method, path, json=body, headers=user)
            assert r.status == 404 and (await r.json())["error"] == "not_found", (method, path)
        # bad input: named
        cases = [
            ("POST", "/api/v1/albums", {"title": ""}, 422, "body.title"),
            ("POST", "/api/v1/albums", {"title": "   "}, 400, "title"),
            ("POST", "/api/v1/albums", {"title": "x", "owner": "mallory"}, 422, "body.owner"),
            ("POST", "/api/v1/albums", {"title": "x", "query": "year:2008", "photos": [canon]}, 400, "photos"),
            ("PATCH", f"/api/v1/albums/{uid}", {"title": None}, 422, "title"),
            ("PATCH", f"/api/v1/albums/{uid}", {"cover": ids["Sony_HDR-HC3.jpg"]}, 400, "cover"),
            ("PATCH", f"/api/v1/albums/{uid}", {"sort_order": "sideways"}, 422, "body.sort_order"),
            ("POST", f"/api/v1/albums/{uid}/photos", {"ids": []}, 422, "body.ids"),
            ("POST", f"/api/v1/albums/{uid}/photos/move", {"photo": nikon}, 422, "after"),
            ("POST", f"/api/v1/albums/{uid}/photos/move", {"photo": nikon, "after": nikon}, 400, "photo"),
            ("POST", f"/api/v1/albums/{uid}/photos/move", {"photo": nikon, "after": ids["Sony_HDR-HC3.jpg"]}, 400,
             "after"),
            ("POST", f"/api/v1/albums/{uid}/photos/move", {"photo": canon, "after": nikon, "before": canon}, 400,
             "photo"),
        ]
        for method, path, body, status, field in cases:
            r = await client.request(method, path, json=body, headers=user)
            answer = await r.json()
            assert r.status == status, f"{method} {path} {body}: {r.status} {answer}"
            assert field in answer["message"] or field in str(answer["details"]), (body, answer)
        r = await client.get(f"/api/v1/albums/{uid}", params={"cursor": "bm90IGEgY3Vyc29y"}, headers=user)
        assert r.status == 400 and (await r.json())["details"]["field"] == "cursor"
        # nothing of that changed the album
        after = await (await client.get(f"/api/v1/albums/{uid}", headers=user)).json()
        assert after["title"] == "Mine" and [p["id"] for p in after["photos"]] == [canon, nikon]

"""Share links against a real App on the real indexed sample library: a guest with a link sees
exactly what it shares and nothing else (other photos, thumbnail keys, originals and routes all
read as "not found" or "not allowed"), expiry, revocation and passwords close it, views are
counted, and only the link's owner (or an admin) manages it."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.app import App
from daemon.auth.roles import Role
from tests.integration.api_support import add_user, api, auth, login, photo_ids, settings
from tests.integration.support import make_config

S = "/api/v1/s"


async def make_album(app: App, title: str, uids: list[str]) -> str:
    """An album written straight into the tables (the album routes are another module's)."""
    assert app.db is not None

    def write(conn: sqlite3.Connection) -> str:
        cur = conn.execute("INSERT INTO albums (uid, title, created_at, updated_at) VALUES (?, ?, ?, ?)",
                           (f"alb{title.lower()}", title, "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"))
        for i, uid in enumerate(uids):
            conn.execute("INSERT INTO album_photos (album_id, photo_id, position, added_at)"
                         " SELECT ?, id, ?, ? FROM photos WHERE uid = ?", (cur.lastrowid, i, "2024-01-01T00:00:00Z", uid))
        return f"alb{title.lower()}"

    return await app.db.write(write)


async def keys(app: App) -> dict[str, str]:
    assert app.db is not None
    return {r["uid"]: r["thumb_key"] for r in await app.db.fetchall("SELECT uid, thumb_key FROM photos")}


async def guest_ids(client: TestClient, token: str, **params: Any) -> list[str]:
    """Every photo id the link lists, page by page."""
    out, cursor = [], None
    while True:
        q = {"limit": "1", **params, **({"cursor": cursor} if cursor else {})}
        r = await client.get(f"{S}/{token}", params=q)
        assert r.status == 200, await r.text()
        page = await r.json()
        out += [p["id"] for p in page["photos"]]
        cursor = page["next_cursor"]
        if not cursor:
            return out


async def test_a_guest_sees_the_shared_album_and_nothing_else(copy: tuple[Path, Path]) -> None:
    library = copy[0]
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ursula", Role.USER)
        h = auth(await login(client, "ursula"))
        ids = await photo_ids(app)
        thumb = await keys(app)
        canon, nikon, pentax = ids["Canon_40D.jpg"], ids["Nikon_D70.jpg"], ids["Pentax_K10D.jpg"]
        album = await make_album(app, "Harbour", [canon, nikon, pentax])
        # Pentax is private: even inside a shared album a guest never sees a private photo
        assert (await client.patch(f"/api/v1/photos/{pentax}", json={"private": True}, headers=h)).status == 200

        r = await client.post("/api/v1/shares", json={"album": album}, headers=h)
        assert r.status == 201, await r.text()
        made = await r.json()
        token = made["token"]
        assert made["title"] == "Harbour" and made["kind"] == "album" and made["download"] is False
        assert made["path"] == f"{S}/{token}" and len(token) == 32

        # what it shares: the album's photos that are not private, a page at a time
        assert sorted(await guest_ids(client, token)) == sorted([canon, nikon])
        page = await (await client.get(f"{S}/{token}")).json()
        assert page["title"] == "Harbour" and page["kind"] == "album" and page["download"] is False
        assert {p["thumb_key"] for p in page["photos"]} == {thumb[canon], thumb[nikon]}

        r = await client.get(f"{S}/{token}/photos/{canon}")
        assert r.status == 200 and (await r.json())["id"] == canon
        r = await client.get(f"{S}/{token}/t/{thumb[canon]}/tile_224")
        assert r.status == 200 and r.content_type in ("image/webp", "image/jpeg") and len(await r.read()) > 500
        assert "immutable" in r.headers["Cache-Control"]
        # a size missing on disk is made on demand, for shared photos too, up to fit_1920 without downloads
        r = await client.get(f"{S}/{token}/t/{thumb[nikon]}/fit_1920")
        assert r.status in (200, 404)  # 404 only if the original is too small to make it; never a leak
        r = await client.get(f"{S}/{token}/t/{thumb[nikon]}/fit_3840")
        assert r.status == 403  # a link without downloads: nothing above fit_1920 (issue 9)

        # everything else reads exactly like something that does not exist
        unknown = await (await client.get(f"{S}/{token}/photos/doesnotexist")).json()
        for uid in ids.values():
            if uid in (canon, nikon):
                continue
            r = await client.get(f"{S}/{token}/photos/{uid}")
            assert r.status == 404 and (await r.json())["error"] == unknown["error"] == "not_found", uid
            r = await client.get(f"{S}/{token}/t/{thumb[uid]}/tile_224")
            assert r.status == 404, uid
            r = await client.get(f"{S}/{token}/photos/{uid}/original")
            assert r.status == 404, uid
        assert (await client.get(f"{S}/{token}/t/{'0' * 40}/tile_224")).status == 404
        # no downloads on this link: the original of a shared photo is refused
        r = await client.get(f"{S}/{token}/photos/{canon}/original")
        assert r.status == 403 and "download" in (await r.json())["message"]
        # the share token opens no other route, neither as a bearer token nor as a URL token
        for path in ("/api/v1/photos", f"/api/v1/photos/{canon}", f"/api/v1/photos/{canon}/original",
                     f"/api/v1/t/{thumb[canon]}/tile_224", "/api/v1/shares", "/api/v1/status"):
            assert (await client.get(path, headers=auth(token))).status == 401, path
            assert (await client.get(path, params={"t": token})).status == 401, path
        # nor a neighbouring path, nor a search inside the link
        r = await client.get(f"{S}/{token}", params={"q": "private:yes"})
        assert sorted(p["id"] for p in (await r.json())["photos"]) == sorted([canon, nikon])
        assert (await client.get(f"{S}/{token}/photos")).status in (404, 405)
        assert (await client.get(f"{S}/{token[:-1]}")).status == 404

        # only the hash of the token is stored
        assert await app.db.scalar("SELECT count(*) FROM shares WHERE token_hash = ?", (token,)) == 0
        assert (library / "camera" / "Canon_40D.jpg").is_file()


async def test_a_selection_with_downloads_and_the_view_count(copy: tuple[Path, Path]) -> None:
    library = copy[0]
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ursula", Role.USER)
        h = auth(await login(client, "ursula"))
        ids = await photo_ids(app)
        canon, gps = ids["Canon_40D.jpg"], ids["DSCN0010.jpg"]
        r = await client.post("/api/v1/shares", json={"photos": [canon, gps, canon], "download": True,
                                                      "title": "For Bea"}, headers=h)
        made = await r.json()
        assert r.status == 201 and made["kind"] == "selection" and made["download"] is True
        token = made["token"]
        assert sorted(await guest_ids(client, token)) == sorted([canon, gps])
        r = await client.get(f"{S}/{token}/photos/{canon}/original")
        assert r.status == 200 and await r.read() == (library / "camera" / "Canon_40D.jpg").read_bytes()
        r = await client.get(f"{S}/{token}/photos/{canon}/original", headers={"Range": "bytes=0-9"})
        assert r.status == 206 and len(await r.read()) == 10
        assert (await client.get(f"{S}/{token}/photos/{ids['Nikon_D70.jpg']}/original")).status == 404

        # views: each opening of the first page counts, next pages do not
        before = (await (await client.get(f"/api/v1/shares/{made['id']}", headers=h)).json())["views"]
        for _ in range(3):
            assert (await client.get(f"{S}/{token}")).status == 200
        r = await client.get(f"{S}/{token}", params={"limit": "1"})
        assert (await client.get(f"{S}/{token}", params={"limit": "1", "cursor": (await r.json())["next_cursor"]})).status == 200
        info = await (await client.get(f"/api/v1/shares/{made['id']}", headers=h)).json()
        assert info["views"] == before + 4 and info["last_viewed_at"]
        # archiving a shared photo takes it out of the link at once
        assert (await client.post(f"/api/v1/photos/{gps}/archive", headers=h)).status == 200
        assert await guest_ids(client, token) == [canon]
        assert (await client.get(f"{S}/{token}/photos/{gps}")).status == 404


async def test_revoked_expired_and_password_protected_links(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ursula", Role.USER)
        h = auth(await login(client, "ursula"))
        ids = await photo_ids(app)
        thumb = await keys(app)
        canon = ids["Canon_40D.jpg"]
        guest_paths = lambda t: [f"{S}/{t}", f"{S}/{t}/photos/{canon}", f"{S}/{t}/t/{thumb[canon]}/tile_224"]  # noqa: E731

        # revoked: every guest route closes at once, as "no such link"
        made = await (await client.post("/api/v1/shares", json={"photos": [canon]}, headers=h)).json()
        assert (await client.get(f"{S}/{made['token']}")).status == 200
        assert (await client.delete(f"/api/v1/shares/{made['id']}", headers=h)).status == 204
        for path in guest_paths(made["token"]):
            r = await client.get(path)
            assert r.status == 404 and "no such share link" in (await r.json())["message"], path
        info = await (await client.get(f"/api/v1/shares/{made['id']}", headers=h)).json()
        assert info["active"] is False and info["revoked_at"]

        # expired
        r = await client.post("/api/v1/shares", json={"photos": [canon], "expires_at": "2020-01-01T00:00:00Z"},
                              headers=h)
        assert r.status == 400 and (await r.json())["details"]["field"] == "expires_at"
        later = datetime.now(timezone(timedelta(hours=2))).replace(microsecond=0) + timedelta(days=30)
        made = await (await client.post("/api/v1/shares", json={"photos": [canon], "expires_at": later.isoformat()},
                                        headers=h)).json()
        assert made["expires_at"] == later.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert (await client.get(f"{S}/{made['token']}")).status == 200
        await app.db.execute_write("UPDATE shares SET expires_at = '2024-01-01T00:00:00Z' WHERE uid = ?", (made["id"],))
        for path in guest_paths(made["token"]):
            assert (await client.get(path)).status == 404, path

        # password: nothing opens before it is given; a wrong one is refused and limited
        r = await client.post("/api/v1/shares", json={"photos": [canon], "password": "open sesame"}, headers=h)
        locked = await r.json()
        assert r.status == 201 and locked["password"] is True and "open sesame" not in await r.text()
        stored = await app.db.scalar("SELECT password_hash FROM shares WHERE uid = ?", (locked["id"],))
        assert stored.startswith("$argon2id$")
        token = locked["token"]
        for path in guest_paths(token):
            r = await client.get(path)
            assert r.status == 401 and (await r.json())["error"] == "password_required", path
        r = await client.post(f"{S}/{token}/unlock", json={"password": "open sesame!"})
        assert r.status == 401 and (await r.json())["error"] == "wrong_password"
        r = await client.post(f"{S}/{token}/unlock", json={"password": "open sesame"})
        assert r.status == 200
        session = (await r.json())["session"]
        for path in guest_paths(token):
            assert (await client.get(path, params={"s": session})).status == 200, path
            wrong = session[:-1] + ("y" if session.endswith("x") else "x")  # (one in 64 tokens ends in x)
            assert (await client.get(path, params={"s": wrong})).status == 401, path
        # a session opens its own link only
        other = await (await client.post("/api/v1/shares", json={"photos": [canon], "password": "another one"},
                                         headers=h)).json()
        assert (await client.get(f"{S}/{other['token']}", params={"s": session})).status == 401
        # revoking the link ends its sessions
        assert (await client.delete(f"/api/v1/shares/{locked['id']}", headers=h)).status == 204
        assert (await client.get(f"{S}/{token}", params={"s": session})).status == 404
        # guessing is limited per link and address (5 wrong passwords, then 429 and backoff)
        statuses = [(await client.post(f"{S}/{other['token']}/unlock", json={"password": f"guess {i}"})).status
                    for i in range(6)]
        assert statuses[:5] == [401] * 5 and statuses[5] == 429
        r = await client.post(f"{S}/{other['token']}/unlock", json={"password": "another one"})
        assert r.status == 429 and int(r.headers["Retry-After"]) > 0


async def test_only_owners_and_admins_manage_links_and_bad_requests_name_the_field(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        for name, role in (("ann", Role.ADMIN), ("ursula", Role.USER), ("uma", Role.USER), ("vera", Role.VIEWER)):
            await add_user(app, name, role)
        ann, ursula, uma, vera = [auth(await login(client, n)) for n in ("ann", "ursula", "uma", "vera")]
        canon = (await photo_ids(app))["Canon_40D.jpg"]
        made = await (await client.post("/api/v1/shares", json={"photos": [canon]}, headers=ursula)).json()
        link = f"/api/v1/shares/{made['id']}"

        # a viewer cannot share; nobody without credentials can do anything
        assert (await client.post("/api/v1/shares", json={"photos": [canon]}, headers=vera)).status == 403
        for method, path in (("GET", "/api/v1/shares"), ("POST", "/api/v1/shares"), ("GET", link), ("DELETE", link)):
            assert (await client.request(method, path, json={"photos": [canon]})).status == 401
        # another user neither sees nor revokes it (it reads as missing); the owner and an admin do
        assert (await (await client.get("/api/v1/shares", headers=uma)).json()) == []
        assert (await client.get(link, headers=uma)).status == 404
        assert (await client.delete(link, headers=uma)).status == 404
        assert [s["id"] for s in await (await client.get("/api/v1/shares", headers=ursula)).json()] == [made["id"]]
        assert [s["id"] for s in await (await client.get("/api/v1/shares", headers=ann)).json()] == [made["id"]]
        listed = await (await client.get("/api/v1/shares", headers=ann)).text()
        assert made["token"] not in listed and "token" not in listed
        assert (await client.get(f"{S}/{made['token']}")).status == 200
        assert (await client.delete(link, headers=ann)).status == 204
        assert (await client.get(f"{S}/{made['token']}")).status == 404

        for body, status, field in [
            ({}, 400, "album"),
            ({"album": "albnothing"}, 404, "album"),
            ({"album": "x", "photos": [canon]}, 400, "album"),
            ({"photos": []}, 422, "body.photos"),
            ({"photos": [canon, "nosuchphoto"]}, 400, "photos"),
            ({"photos": [canon], "password": "short"}, 422, "body.password"),
            ({"photos": [canon], "expires_at": "next tuesday"}, 422, "body.expires_at"),
            ({"photos": [canon], "expires_at": "2999-01-01T00:00:00Z"}, 400, "expires_at"),
            ({"photos": [canon], "token": "mine"}, 422, "body.token"),
        ]:
            r = await client.post("/api/v1/shares", json=body, headers=ursula)
            answer = await r.json()
            assert r.status == status, (body, answer)
            assert field in str(answer["details"]), (body, answer)
        assert await app.db.scalar("SELECT count(*) FROM shares") == 1


async def test_a_smart_album_shares_what_its_query_finds_then_and_now(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ursula", Role.USER)
        h = auth(await login(client, "ursula"))
        assert app.db is not None
        await app.db.execute_write(
            "INSERT INTO albums (uid, type, title, query, created_at, updated_at)"
            " VALUES ('albnikon', 'smart', 'Nikons', 'camera:nikon', 'x', 'x')")
        owner = await (await client.get("/api/v1/photos", params={"q": "camera:nikon"}, headers=h)).json()
        nikons = sorted(p["id"] for p in owner["photos"])
        assert len(nikons) >= 1
        token = (await (await client.post("/api/v1/shares", json={"album": "albnikon"}, headers=h)).json())["token"]
        assert sorted(await guest_ids(client, token)) == nikons
        others = [u for u in (await photo_ids(app)).values() if u not in nikons]
        for uid in others:
            assert (await client.get(f"{S}/{token}/photos/{uid}")).status == 404
        # the query decides: a photo made private leaves the link
        assert (await client.patch(f"/api/v1/photos/{nikons[0]}", json={"private": True}, headers=h)).status == 200
        assert sorted(await guest_ids(client, token)) == nikons[1:]
        assert (await client.get(f"{S}/{token}/photos/{nikons[0]}")).status == 404
        # deleting the album deletes its links
        await app.db.execute_write("DELETE FROM albums WHERE uid = 'albnikon'")
        assert (await client.get(f"{S}/{token}")).status == 404


async def test_a_link_is_changed_in_place_and_keeps_its_url(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ursula", Role.USER)
        await add_user(app, "victor", Role.USER)
        h = auth(await login(client, "ursula"))
        ids = await photo_ids(app)
        canon = ids["Canon_40D.jpg"]
        made = await (await client.post("/api/v1/shares", json={"photos": [canon], "title": "Draft",
                                                                "password": "open sesame"}, headers=h)).json()
        token, url = made["token"], f"/api/v1/shares/{made['id']}"
        session = (await (await client.post(f"{S}/{token}/unlock", json={"password": "open sesame"})).json())["session"]
        assert (await client.get(f"{S}/{token}/photos/{canon}/original", params={"s": session})).status == 403

        # title, expiry and downloads change; the guest's URL and session still work
        later = (datetime.now(timezone.utc) + timedelta(days=7)).replace(microsecond=0)
        r = await client.patch(url, json={"title": "Summer", "expires_at": later.isoformat(), "download": True},
                               headers=h)
        changed = await r.json()
        assert r.status == 200 and changed["title"] == "Summer" and changed["download"] is True
        assert changed["expires_at"] == later.strftime("%Y-%m-%dT%H:%M:%SZ") and changed["password"] is True
        page = await (await client.get(f"{S}/{token}", params={"s": session})).json()
        assert page["title"] == "Summer" and page["download"] is True
        assert (await client.get(f"{S}/{token}/photos/{canon}/original", params={"s": session})).status == 200

        # a new password sends every guest back to the password page; the new one opens it
        assert (await client.patch(url, json={"password": "new secret 42"}, headers=h)).status == 200
        r = await client.get(f"{S}/{token}", params={"s": session})
        assert r.status == 401 and (await r.json())["error"] == "password_required"
        assert (await client.post(f"{S}/{token}/unlock", json={"password": "open sesame"})).status == 401
        assert (await client.post(f"{S}/{token}/unlock", json={"password": "new secret 42"})).status == 200
        # null removes the password and the expiry: the link opens for anyone, until revoked
        r = await client.patch(url, json={"password": None, "expires_at": None}, headers=h)
        assert (await r.json())["password"] is False and (await r.json())["expires_at"] is None
        assert (await client.get(f"{S}/{token}")).status == 200

        # refusals: someone else's link reads as missing, bad values name the field, revoked is final
        victor = auth(await login(client, "victor"))
        assert (await client.patch(url, json={"title": "Mine"}, headers=victor)).status == 404
        r = await client.patch(url, json={"expires_at": "2020-01-01T00:00:00Z"}, headers=h)
        assert r.status == 400 and (await r.json())["details"]["field"] == "expires_at"
        r = await client.patch(url, json={"download": None}, headers=h)
        assert r.status == 400 and (await r.json())["details"]["field"] == "download"
        assert (await client.patch(url, json={"token": "x" * 30}, headers=h)).status in (400, 422)
        assert (await client.delete(url, headers=h)).status == 204
        r = await client.patch(url, json={"title": "Back"}, headers=h)
        assert r.status == 409
        assert (await (await client.get(url, headers=h)).json())["title"] == "Summer"

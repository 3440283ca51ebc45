"""Account administration through /api/v1/users against a real App on a real SQLite file: an admin
adds, re-roles, resets and removes accounts, and what each does is what its owner notices (a
login that works, a refresh token that stops working, a phone that is logged out, albums that
stay); nobody else may touch any of it, and every change leaves an audit line without the password."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from daemon.auth.roles import Role
from tests.integration.api_support import PASSWORD, add_user, api, auth, login, photo_ids, settings
from tests.integration.support import make_config

NEW_PASSWORD = "a brand new passphrase"


async def users(client: TestClient, h: dict[str, str]) -> dict[str, dict]:
    r = await client.get("/api/v1/users", headers=h)
    assert r.status == 200, await r.text()
    return {u["name"]: u for u in await r.json()}


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "daemon.audit"]


async def test_admin_adds_a_user_who_then_logs_in_and_names_are_unique(library: Path, tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="daemon.audit")
    async with api(make_config(library, tmp_path / "data", **settings())) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        h = auth(await login(client, "ann"))
        r = await client.post("/api/v1/users", json={"name": "bob", "role": "viewer", "password": PASSWORD}, headers=h)
        assert r.status == 201, await r.text()
        bob = await r.json()
        assert bob["name"] == "bob" and bob["role"] == "viewer" and bob["sessions"] == 0
        assert bob["last_login_at"] is None and "password" not in str(bob) and PASSWORD not in str(bob)

        tokens = await login(client, "bob")
        me = await (await client.get("/api/v1/auth/me", headers=auth(tokens))).json()
        assert me["name"] == "bob" and me["role"] == "viewer"
        listed = await users(client, h)
        assert sorted(listed) == ["ann", "bob"]
        assert listed["bob"]["sessions"] == 1 and listed["bob"]["last_login_at"] is not None
        assert listed["ann"]["role"] == "admin" and listed["ann"]["id"] != bob["id"]

        # the same name, whatever its case: 409, and the first account is untouched
        r = await client.post("/api/v1/users", json={"name": "BOB", "role": "admin", "password": NEW_PASSWORD}, headers=h)
        assert r.status == 409 and "already exists" in (await r.json())["message"]
        assert (await users(client, h))["bob"]["role"] == "viewer"
        await login(client, "bob")  # still the old password
        # the password rules of setup and `shoebox users`: 8 characters, not only spaces
        r = await client.post("/api/v1/users", json={"name": "cy", "password": "short"}, headers=h)
        assert r.status == 422 and "body.password" in (await r.json())["message"]
        r = await client.post("/api/v1/users", json={"name": "cy", "password": " " * 12}, headers=h)
        assert r.status == 400 and (await r.json())["details"] == {"field": "password"}
        r = await client.post("/api/v1/users", json={"name": "no spaces please", "password": PASSWORD}, headers=h)
        assert r.status == 400 and "invalid user name" in (await r.json())["message"]
        assert sorted(await users(client, h)) == ["ann", "bob"]

    lines = audit_lines(caplog)
    assert any("admin 'ann'" in line and "created viewer 'bob'" in line for line in lines), lines
    assert not any(PASSWORD in line or NEW_PASSWORD in line for line in lines)
    assert not any(PASSWORD in r.getMessage() for r in caplog.records)


async def test_users_and_viewers_are_refused_every_route(library: Path, tmp_path: Path) -> None:
    async with api(make_config(library, tmp_path / "data", **settings())) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        await add_user(app, "ursula", Role.USER)
        await add_user(app, "vera", Role.VIEWER)
        ids = {name: u["id"] for name, u in (await users(client, auth(await login(client, "ann")))).items()}
        for name in ("ursula", "vera"):
            h = auth(await login(client, name))
            for method, path, body in [
                ("GET", "/api/v1/users", None),
                ("POST", "/api/v1/users", {"name": "mallory", "role": "admin", "password": PASSWORD}),
                ("PATCH", f"/api/v1/users/{ids[name]}", {"role": "admin"}),
                ("POST", f"/api/v1/users/{ids['ann']}/password", {"password": NEW_PASSWORD}),
                ("DELETE", f"/api/v1/users/{ids['ann']}", None),
            ]:
                r = await client.request(method, path, json=body, headers=h)
                assert r.status == 403, f"{name}: {method} {path} -> {r.status}"
                assert (await r.json())["error"] == "forbidden"
        listed = await users(client, auth(await login(client, "ann")))
        assert sorted(listed) == ["ann", "ursula", "vera"]
        assert (listed["ursula"]["role"], listed["vera"]["role"]) == ("user", "viewer")
        await login(client, "ann")  # the admin's password is unchanged


async def test_the_last_admin_can_be_neither_demoted_nor_removed(library: Path, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="daemon.audit")
    async with api(make_config(library, tmp_path / "data", **settings())) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        await add_user(app, "bob", Role.USER)
        h = auth(await login(client, "ann"))
        ids = {name: u["id"] for name, u in (await users(client, h)).items()}
        for method, body in (("PATCH", {"role": "viewer"}), ("DELETE", None)):
            r = await client.request(method, f"/api/v1/users/{ids['ann']}", json=body, headers=h)
            assert r.status == 409, (method, r.status)
            answer = await r.json()
            assert answer["error"] == "last_admin" and "last admin" in answer["message"]
            assert "make another admin first" in answer["message"]
        assert (await users(client, h))["ann"]["role"] == "admin"

        # with a second admin, one may step down (and then no longer manage accounts)
        r = await client.patch(f"/api/v1/users/{ids['bob']}", json={"role": "admin"}, headers=h)
        assert r.status == 200 and (await r.json())["role"] == "admin"
        bob = auth(await login(client, "bob"))
        r = await client.patch(f"/api/v1/users/{ids['ann']}", json={"role": "user"}, headers=h)
        assert r.status == 200 and (await r.json())["role"] == "user"
        assert (await client.get("/api/v1/users", headers=h)).status == 403
        # now bob is the last admin: he cannot step down or remove himself either
        r = await client.patch(f"/api/v1/users/{ids['bob']}", json={"role": "viewer"}, headers=bob)
        assert r.status == 409 and (await r.json())["error"] == "last_admin"
        r = await client.delete(f"/api/v1/users/{ids['bob']}", headers=bob)
        assert r.status == 409 and (await r.json())["error"] == "last_admin"
        assert (await client.patch("/api/v1/users/999999", json={"role": "user"}, headers=bob)).status == 404
        assert (await client.delete("/api/v1/users/999999", headers=bob)).status == 404

    lines = audit_lines(caplog)
    assert any("admin 'ann'" in line and "role of 'bob'" in line and "from user to admin" in line for line in lines)
    assert any("admin 'ann'" in line and "role of 'ann'" in line and "from admin to user" in line for line in lines)


async def test_a_password_reset_ends_the_old_sessions_and_the_new_password_works(
        library: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="daemon.audit")
    async with api(make_config(library, tmp_path / "data", **settings())) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        await add_user(app, "bob", Role.USER)
        admin = await login(client, "ann")
        h = auth(admin)
        bob_id = (await users(client, h))["bob"]["id"]
        phone = await login(client, "bob")
        r = await client.post("/api/v1/auth/tokens", json={"name": "frame", "scopes": ["read"]}, headers=auth(phone))
        assert r.status == 201
        app_token = (await r.json())["token"]

        r = await client.post(f"/api/v1/users/{bob_id}/password", json={"password": "short"}, headers=h)
        assert r.status == 422
        r = await client.post(f"/api/v1/users/{bob_id}/password", json={"password": NEW_PASSWORD}, headers=h)
        assert r.status == 204, await r.text()
        # the phone is logged out: its access token and its refresh token stop working
        assert (await client.get("/api/v1/auth/me", headers=auth(phone))).status == 401
        r = await client.post("/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]})
        assert r.status == 401
        assert (await client.get("/api/v1/auth/me", headers=auth(app_token))).status == 401
        # the old password no longer opens anything; the new one does
        r = await client.post("/api/v1/auth/login", json={"username": "bob", "password": PASSWORD})
        assert r.status == 401
        fresh = await login(client, "bob", NEW_PASSWORD)
        assert (await client.get("/api/v1/auth/me", headers=auth(fresh))).status == 200
        # an admin's own password goes through /auth/password (it asks for the current one)
        ann_id = (await users(client, h))["ann"]["id"]
        r = await client.post(f"/api/v1/users/{ann_id}/password", json={"password": NEW_PASSWORD}, headers=h)
        assert r.status == 409 and (await r.json())["error"] == "own_account"
        await login(client, "ann")
        assert (await client.post("/api/v1/users/999999/password", json={"password": NEW_PASSWORD},
                                  headers=h)).status == 404

    lines = audit_lines(caplog)
    assert any("admin 'ann'" in line and "reset the password of 'bob'" in line and "1 session(s) ended" in line
               for line in lines), lines
    every = [r.getMessage() for r in caplog.records]
    assert not any(NEW_PASSWORD in line or PASSWORD in line for line in every)


async def test_removing_a_user_ends_their_access_keeps_their_albums_and_ends_their_links(
        copy: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="daemon.audit")
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        await add_user(app, "bob", Role.USER)
        h = auth(await login(client, "ann"))
        phone, laptop = await login(client, "bob"), await login(client, "bob")
        r = await client.post("/api/v1/auth/tokens", json={"name": "frame", "scopes": ["read"]}, headers=auth(phone))
        app_token = (await r.json())["token"]
        uid = (await photo_ids(app))["Canon_40D.jpg"]
        r = await client.post("/api/v1/albums", json={"title": "Bob's holiday", "photos": [uid]}, headers=auth(phone))
        assert r.status == 201, await r.text()
        album = (await r.json())["id"]
        r = await client.post("/api/v1/shares", json={"album": album}, headers=auth(phone))
        assert r.status == 201, await r.text()
        link = (await r.json())["token"]
        assert (await client.get(f"/api/v1/s/{link}")).status == 200
        listed = await users(client, h)
        assert listed["bob"]["sessions"] == 2 and listed["bob"]["app_tokens"] == 1

        # an admin cannot remove themselves (another admin does)
        await add_user(app, "cat", Role.ADMIN)
        r = await client.delete(f"/api/v1/users/{listed['ann']['id']}", headers=h)
        assert r.status == 409 and (await r.json())["error"] == "own_account"

        r = await client.delete(f"/api/v1/users/{listed['bob']['id']}", headers=h)
        assert r.status == 200, await r.text()
        assert await r.json() == {"sessions": 2, "app_tokens": 1, "shares": 1, "albums": 1}
        assert "bob" not in await users(client, h)
        for gone in (phone, laptop):
            assert (await client.get("/api/v1/auth/me", headers=auth(gone))).status == 401
            r = await client.post("/api/v1/auth/refresh", json={"refresh_token": gone["refresh_token"]})
            assert r.status == 401
        assert (await client.get("/api/v1/auth/me", headers=auth(app_token))).status == 401
        r = await client.post("/api/v1/auth/login", json={"username": "bob", "password": PASSWORD})
        assert r.status == 401
        # the link no longer opens; the album stays, with its photo, now ann's
        assert (await client.get(f"/api/v1/s/{link}")).status == 404
        r = await client.get(f"/api/v1/albums/{album}", headers=h)
        assert r.status == 200
        kept = await r.json()
        assert kept["owner"] == "ann" and kept["title"] == "Bob's holiday" and kept["photo_count"] == 1
        assert (await client.delete(f"/api/v1/users/{listed['bob']['id']}", headers=h)).status == 404

    lines = audit_lines(caplog)
    assert any("admin 'ann'" in line and "removed 'bob'" in line and "2 session(s)" in line
               and "1 album(s) now belong to 'ann'" in line for line in lines), lines
    assert not any(PASSWORD in r.getMessage() for r in caplog.records)

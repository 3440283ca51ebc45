"""The API is closed to anyone without the right credentials, and no input can break it or reach
outside what it serves. Against a real App on a real SQLite file with the sample photos indexed
by the real indexer; schemathesis against the real `shoebox serve`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient

from daemon.api.access import policy_of
from daemon.app import App
from daemon.auth.roles import Role
from tests.integration.api_support import (PASSWORD, Daemon, add_user, api, auth, clone,
                                           create_admin, login, photo_ids, settings)
from tests.integration.support import make_config

PUBLIC = {
    ("GET", "/api/v1/health"), ("HEAD", "/api/v1/health"),
    ("POST", "/api/v1/auth/login"), ("POST", "/api/v1/auth/refresh"),
    ("GET", "/api/v1/setup"), ("HEAD", "/api/v1/setup"), ("POST", "/api/v1/setup"),
    # the local CA's certificate (public by nature; with HTTPS off it answers 404 no_local_ca)
    ("GET", "/ca.crt"), ("HEAD", "/ca.crt"),
}
# Public in the policy sense, but nothing opens without a live share link token, and then only what
# the link shares (tests/integration/test_api_shares.py proves it; the check below refuses forged ones).
SHARE_GUEST = {
    (m, f"/api/v1/s/{{token}}{tail}") for m in ("GET", "HEAD")
    for tail in ("", "/photos/{uid}", "/photos/{uid}/original", "/t/{thumb_key}/{size}")
} | {("POST", "/api/v1/s/{token}/unlock")}
# The live WebSocket authenticates itself (a Bearer header, or a first message from browsers, which
# cannot set headers on a WebSocket): without credentials it answers 401 like the rest (checked below).
SELF_AUTHENTICATED = {("GET", "/api/v1/live"), ("HEAD", "/api/v1/live")}
# The web app's files (web/dist) and its client-side routes: public like any web page, never a
# path under /api (daemon/api/webapp.py answers those 404; test_api_timeline proves it).
WEB_APP = {("GET", "/{tail}"), ("HEAD", "/{tail}")}


def routes(client: TestClient) -> list[tuple[str, str]]:
    return sorted({(r.method, r.resource.canonical) for r in client.server.app.router.routes()})


async def fill(app: App, path: str) -> str:
    """A route pattern with real values: a real photo, its thumbnail key, a real size."""
    assert app.db is not None
    row = await app.db.fetchone("SELECT uid, thumb_key FROM photos LIMIT 1")
    return (path.replace("{uid}", row["uid"]).replace("{thumb_key}", row["thumb_key"])
            .replace("{size}", "tile_224").replace("{index}", "0")
            .replace("{session_id}", "0123456789abcdef").replace("{token_id}", "0123456789abcdef")
            .replace("{share_id}", "0123456789abcdef").replace("{webhook_id}", "1").replace("{user_id}", "1")
            .replace("{token}", "made-up-share-token-0123456789").replace("{import_id}", "0123456789abcdef")
            .replace("{month}", "2008-05"))


async def call(client: TestClient, method: str, path: str, **kwargs: Any) -> Any:
    if method in ("POST", "PATCH", "PUT"):
        kwargs.setdefault("json", {})
    return await client.request(method, path, **kwargs)


async def test_every_route_refuses_a_request_without_valid_credentials(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        tokens = await login(client, "ann")
        every = routes(client)
        assert len(every) >= 20
        public = {(m, p) for m, p in every
                  for r in client.server.app.router.routes()
                  if r.method == m and r.resource.canonical == p and policy_of(r.handler).scope is None}
        # a route only becomes public on purpose: these lists are the whole of them
        assert public == PUBLIC | SHARE_GUEST | SELF_AUTHENTICATED | WEB_APP
        forged = jwt.encode({"iss": "shoebox", "typ": "access", "sid": tokens["session"], "sub": "1",
                             "iat": int(time.time()), "exp": int(time.time()) + 600}, "x" * 32, algorithm="HS256")
        refused = 0
        # logging out ends the session the valid-token checks use: do it last
        every.sort(key=lambda route: route == ("POST", "/api/v1/auth/logout"))
        for method, pattern in every:
            if (method, pattern) in PUBLIC | WEB_APP:
                continue
            if (method, pattern) in SHARE_GUEST:  # a made-up share token opens nothing, not even with a login
                path = await fill(app, pattern)
                for kwargs in ({}, {"headers": auth(tokens)}, {"params": {"t": tokens["thumb_token"]}}):
                    if method == "POST":
                        kwargs = {**kwargs, "json": {"password": "a guess at it"}}
                    r = await call(client, method, path, **kwargs)
                    # 404, until this address has guessed too many tokens: then 429 (share-token guessing limit)
                    assert r.status in (404, 429), f"{method} {path} with {kwargs}: {r.status}"
                    assert b"thumb_key" not in await r.read()
                continue
            path = await fill(app, pattern)
            for label, kwargs in [
                ("no credentials", {}),
                ("garbage token", {"headers": {"Authorization": "Bearer not-a-token"}}),
                ("other scheme", {"headers": {"Authorization": f"Basic {tokens['access_token']}"}}),
                ("forged signature", {"headers": auth(forged)}),
                ("thumbnail token as bearer", {"headers": auth(tokens["thumb_token"])}),
                ("refresh token as bearer", {"headers": auth(tokens["refresh_token"])}),
            ]:
                r = await call(client, method, path, **kwargs)
                assert r.status == 401, f"{method} {path} with {label}: {r.status}"
                if method != "HEAD":
                    body = await r.json()
                    assert body["error"] == "unauthorized" and body["message"], body
                    assert r.headers["WWW-Authenticate"].startswith("Bearer")
                refused += 1
            if "/t/" not in pattern:  # a URL token opens thumbnails and nothing else
                r = await call(client, method, path, params={"t": tokens["thumb_token"]})
                assert r.status == 401, f"{method} {path} with ?t=: {r.status}"
            # and the real credentials do get through (so the 401s above are about credentials)
            r = await call(client, method, path, headers=auth(tokens))
            assert r.status != 401, f"{method} {path} refused a valid admin token"
        assert refused >= 6 * 15


async def test_public_routes_give_nothing_away(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        r = await client.get("/api/v1/health")
        assert r.status == 200 and (await r.json())["status"] == "ok"
        r = await client.post("/api/v1/auth/login", json={"username": "nobody", "password": "wrong password"})
        assert r.status == 401 and "access_token" not in await r.text()
        r = await client.post("/api/v1/auth/refresh", json={"refresh_token": "sbr_made_up"})
        assert r.status == 401
        r = await client.get("/ca.crt")  # HTTPS off here: no local CA, and never a key
        assert r.status == 404 and (await r.json())["error"] == "no_local_ca"


async def test_setup_works_once_while_no_admin_exists(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        assert (await (await client.get("/api/v1/setup")).json()) == {"needed": True}
        r = await client.post("/api/v1/setup", json={"username": "ann", "password": "short"})
        assert r.status == 422 and "body.password" in (await r.json())["message"]
        r = await client.post("/api/v1/setup", json={"username": "ann", "password": PASSWORD})
        assert r.status == 201 and (await r.json()) == {"name": "ann", "role": "admin"}
        assert (await (await client.get("/api/v1/setup")).json()) == {"needed": False}
        # a second setup, even with another name, cannot make another admin
        r = await client.post("/api/v1/setup", json={"username": "mallory", "password": PASSWORD})
        assert r.status == 409 and (await r.json())["error"] == "conflict"
        assert await app.db.scalar("SELECT count(*) FROM users") == 1
        r = await client.post("/api/v1/auth/login", json={"username": "mallory", "password": PASSWORD})
        assert r.status == 401
        await login(client, "ann")


async def test_two_setups_at_once_make_one_admin(copy: tuple[Path, Path]) -> None:
    import asyncio
    async with api(make_config(*copy, **settings())) as (app, client):
        answers = await asyncio.gather(*[
            client.post("/api/v1/setup", json={"username": f"admin{i}", "password": PASSWORD}) for i in range(4)])
        assert sorted(r.status for r in answers) == [201, 409, 409, 409]
        assert await app.db.scalar("SELECT count(*) FROM users") == 1


async def test_a_viewer_cannot_edit_and_a_user_cannot_delete_originals(copy: tuple[Path, Path]) -> None:
    library = copy[0]
    async with api(make_config(*copy, **settings())) as (app, client):
        for name, role in (("vera", Role.VIEWER), ("ursula", Role.USER), ("ann", Role.ADMIN)):
            await add_user(app, name, role)
        viewer, user = await login(client, "vera"), await login(client, "ursula")
        uid = (await photo_ids(app))["Canon_40D.jpg"]
        assert (await client.get(f"/api/v1/photos/{uid}", headers=auth(viewer))).status == 200
        assert (await client.get(f"/api/v1/photos/{uid}/original", headers=auth(viewer))).status == 200
        for method, path, body in [
            ("PATCH", f"/api/v1/photos/{uid}", {"title": "mine now"}),
            ("POST", "/api/v1/photos/batch", {"ids": [uid], "changes": {"favorite": True}}),
            ("POST", f"/api/v1/photos/{uid}/archive", None),
            ("POST", f"/api/v1/photos/{uid}/restore", None),
            ("DELETE", f"/api/v1/photos/{uid}?delete_files=true", None),
        ]:
            r = await client.request(method, path, json=body, headers=auth(viewer))
            assert r.status == 403, f"viewer {method} {path}: {r.status}"
            assert (await r.json())["error"] == "forbidden"
        detail = await (await client.get(f"/api/v1/photos/{uid}", headers=auth(viewer))).json()
        assert detail["title"] != "mine now" and detail["favorite"] is False and detail["archived"] is False
        # a viewer cannot give itself more through an app token either
        r = await client.post("/api/v1/auth/tokens", json={"name": "x", "scopes": ["write"]}, headers=auth(viewer))
        assert r.status == 403
        # a user edits, but cannot delete originals
        r = await client.patch(f"/api/v1/photos/{uid}", json={"title": "Harbour"}, headers=auth(user))
        assert r.status == 200 and (await r.json())["title"] == "Harbour"
        r = await client.delete(f"/api/v1/photos/{uid}?delete_files=true", headers=auth(user))
        assert r.status == 403
        assert (library / "camera" / "Canon_40D.jpg").is_file()


async def test_expired_tampered_and_revoked_tokens_are_refused(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        phone, laptop = await login(client, "ann"), await login(client, "ann")
        assert (await client.get("/api/v1/auth/me", headers=auth(phone))).status == 200

        # expired: signed with the right key, but its 15 minutes are over
        assert app.auth is not None
        old, _ = app.auth.signer.access_token(phone["session"], 1, now=time.time() - 3600)
        r = await client.get("/api/v1/auth/me", headers=auth(old))
        assert r.status == 401 and "expired" in (await r.json())["message"]

        # tampered: payload changed (to another user) with the signature kept; signature bit flipped
        header, payload, sig = phone["access_token"].split(".")
        claims = json.loads(jwt.utils.base64url_decode(payload))
        claims["sub"] = "2"
        evil = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
        for bad in (f"{header}.{evil}.{sig}", f"{header}.{payload}.{sig[:-2]}{'A' if sig[-2] != 'A' else 'B'}{sig[-1]}",
                    jwt.encode({**claims, "sub": "1"}, None, algorithm="none")):
            assert (await client.get("/api/v1/auth/me", headers=auth(bad))).status == 401

        # revoked: the laptop ends the phone's session; the phone's unexpired token stops working at once
        sessions = await (await client.get("/api/v1/auth/sessions", headers=auth(laptop))).json()
        assert {s["id"] for s in sessions} == {phone["session"], laptop["session"]}
        r = await client.delete(f"/api/v1/auth/sessions/{phone['session']}", headers=auth(laptop))
        assert r.status == 204
        assert (await client.get("/api/v1/auth/me", headers=auth(phone))).status == 401
        thumb = f"/api/v1/t/{await app.db.scalar('SELECT thumb_key FROM photos LIMIT 1')}/tile_224"
        assert (await client.get(thumb, params={"t": phone["thumb_token"]})).status == 401
        r = await client.post("/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]})
        assert r.status == 401

        # logout ends the laptop's own session
        assert (await client.post("/api/v1/auth/logout", headers=auth(laptop))).status == 204
        assert (await client.get("/api/v1/auth/me", headers=auth(laptop))).status == 401


async def test_refresh_tokens_rotate_and_a_reused_one_ends_the_session(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.USER)
        first = await login(client, "ann")
        r = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        second = await r.json()
        assert r.status == 200 and second["refresh_token"] != first["refresh_token"]
        assert second["session"] == first["session"]
        assert (await client.get("/api/v1/auth/me", headers=auth(second))).status == 200
        # someone replays the old refresh token (a stolen copy): refused, and the session is over
        r = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert r.status == 401 and "already used" in (await r.json())["message"]
        assert (await client.get("/api/v1/auth/me", headers=auth(second))).status == 401
        r = await client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
        assert r.status == 401


async def test_app_tokens_carry_their_scopes_and_can_be_revoked(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        session = await login(client, "ann")
        uid = (await photo_ids(app))["Nikon_D70.jpg"]
        r = await client.post("/api/v1/auth/tokens", json={"name": "photo frame", "scopes": ["read"]},
                              headers=auth(session))
        assert r.status == 201
        made = await r.json()
        frame = made["token"]
        assert frame.startswith("sba_")
        assert (await client.get("/api/v1/photos", headers=auth(frame))).status == 200
        r = await client.patch(f"/api/v1/photos/{uid}", json={"title": "x"}, headers=auth(frame))
        assert r.status == 403 and "write" in (await r.json())["message"]
        # an app token is not usable in a URL unless it can do nothing but thumbnails
        thumb_key = await app.db.scalar("SELECT thumb_key FROM photos WHERE uid = ?", (uid,))
        assert (await client.get(f"/api/v1/t/{thumb_key}/tile_224", params={"t": frame})).status == 401
        r = await client.post("/api/v1/auth/tokens", json={"name": "wall", "scopes": ["thumbnails"]},
                              headers=auth(session))
        wall = (await r.json())["token"]
        assert (await client.get(f"/api/v1/t/{thumb_key}/tile_224", params={"t": wall})).status == 200
        assert (await client.get("/api/v1/photos", params={"t": wall})).status == 401
        assert (await client.get("/api/v1/photos", headers=auth(wall))).status == 403
        # only hashes are stored
        assert await app.db.scalar("SELECT count(*) FROM app_tokens WHERE token_hash = ?", (frame,)) == 0
        listed = await (await client.get("/api/v1/auth/tokens", headers=auth(session))).json()
        assert {t["name"] for t in listed} == {"photo frame", "wall"} and all("token" not in t for t in listed)
        assert (await client.delete(f"/api/v1/auth/tokens/{made['id']}", headers=auth(session))).status == 204
        assert (await client.get("/api/v1/photos", headers=auth(frame))).status == 401


async def test_path_traversal_through_every_path_and_file_parameter(copy: tuple[Path, Path]) -> None:
    library, data = copy
    (library.parent / "secret.txt").write_text("root:x:0:0:do not serve me")
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        h = auth(await login(client, "ann"))
        tokens = await login(client, "ann")
        uid = (await photo_ids(app))["Canon_40D.jpg"]
        key = await app.db.scalar("SELECT thumb_key FROM photos WHERE uid = ?", (uid,))
        attempts = [
            "/api/v1/t/../../etc/passwd/tile_224",
            "/api/v1/t/..%2F..%2F..%2Fetc%2Fpasswd/tile_224",
            "/api/v1/t/%2e%2e%2f%2e%2e%2fsecret.txt/tile_224",
            f"/api/v1/t/{key}/..%2F..%2F..%2Fshoebox.db",
            f"/api/v1/t/{key}/../../shoebox.db",
            f"/api/v1/t/{key}/tile_224%00.jpg",
            f"/api/v1/t/{key}/tile_224%2F..%2F..%2Fsecret.key",
            f"/api/v1/t/{key[:2]}%2F{key[2:4]}%2F{key}/tile_224",
            f"/api/v1/t/{key.upper()}/tile_224",
            "/api/v1/photos/..%2F..%2Fsecret.txt/original",
            f"/api/v1/photos/{uid}/files/..%2F..%2Fsecret.txt",
            f"/api/v1/photos/{uid}/files/-1",
            f"/api/v1/photos/{uid}/files/99",
            f"/api/v1/photos/{uid}/files/0%2F..%2F..",
            "/api/v1/photos/%2e%2e/original",
        ]
        secret_bytes = (data / "secret.key").read_bytes()
        for path in attempts:
            for kwargs in ({"headers": h}, {"params": {"t": tokens["thumb_token"]}}):
                r = await client.get(path, **kwargs)
                body = await r.read()
                assert 400 <= r.status < 500, f"{path}: {r.status}"
                assert b"root:x" not in body and secret_bytes not in body and b"SQLite format" not in body
        # the real thing works, so the refusals above are about the paths
        assert (await client.get(f"/api/v1/t/{key}/tile_224", headers=h)).status == 200
        # a database row pointing outside the library (corruption, a hand edit) is still refused
        await app.db.execute_write("UPDATE files SET path = ?, path_text = ? WHERE photo_id = (SELECT id FROM photos"
                                   " WHERE uid = ?)", (b"../secret.txt", "../secret.txt", uid))
        r = await client.get(f"/api/v1/photos/{uid}/original", headers=h)
        assert r.status == 403 and b"root:x" not in await r.read()  # the library gate refuses it


async def test_oversized_and_malformed_json_get_json_errors(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings(server__max_body_kib=16))) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        h = auth(await login(client, "ann"))
        uid = (await photo_ids(app))["Canon_40D.jpg"]
        url = f"/api/v1/photos/{uid}"
        cases = [
            (json.dumps({"description": "x" * 40_000}).encode(), 413, "request_entity_too_large"),
            (b'{"title": "unclosed', 400, "malformed_json"),
            (b"\xff\xfe\x00garbage", 400, "malformed_json"),
            (b"[1, 2, 3]", 400, "bad_request"),
            (b'"just a string"', 400, "bad_request"),
            (b"", 400, "malformed_json"),
            (b'{"rating": 9}', 422, "validation_failed"),
            (b'{"rating": "five"}', 422, "validation_failed"),
            (b'{"owner": "mallory"}', 422, "validation_failed"),
            (b'{"taken_at": "2023-02-30T10:00:00"}', 422, "validation_failed"),
            (b'{"lat": 45.0}', 422, "validation_failed"),
            (b'{"favorite": null}', 422, "validation_failed"),
            (b'{"title": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "malformed_json"),
        ]
        for raw, status, code in cases:
            r = await client.patch(url, data=raw, headers={**h, "Content-Type": "application/json"})
            assert r.status == status, f"{raw[:40]!r}: {r.status} {await r.text()}"
            body = await r.json()
            assert body["error"] == code and body["message"], body
        r = await client.patch(url, json={"rating": 9, "owner": "x"}, headers=h)
        message = (await r.json())["message"]
        assert "body.rating" in message and "body.owner" in message
        r = await client.get("/api/v1/photos", params={"limit": "lots"}, headers=h)
        assert r.status == 422 and "query.limit" in (await r.json())["message"]
        r = await client.get("/api/v1/photos", params={"q": "nosuchfilter:1"}, headers=h)
        body = await r.json()
        assert r.status == 400 and body["error"] == "bad_query" and "nosuchfilter" in body["message"]
        r = await client.get("/api/v1/photos", params={"cursor": "bm90IGEgY3Vyc29y"}, headers=h)
        assert r.status == 400 and (await r.json())["details"]["field"] == "cursor"
        # the photo is unchanged by all of it
        detail = await (await client.get(url, headers=h)).json()
        assert detail["rating"] != 9 and "manual" not in detail["sources"].values()


async def test_failed_logins_back_off_per_account_and_address_and_are_limited_per_address(
        copy: tuple[Path, Path]) -> None:
    """No hard lock on the account (anyone could lock its owner out): the guessing address backs
    off from that account, and one address trying many names is stopped (tests/security has the
    parallel and multi-address attacks)."""
    config = make_config(*copy, **settings(auth__max_failures=3, auth__address_failures=6, auth__lockout=600))
    async with api(config) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        for _ in range(3):
            r = await client.post("/api/v1/auth/login", json={"username": "ann", "password": "guess guess"})
            assert r.status == 401
        r = await client.post("/api/v1/auth/login", json={"username": "ann", "password": PASSWORD})
        assert r.status == 429, "the guessing address must back off, even with the right password"
        assert 1 <= int(r.headers["Retry-After"]) <= 3
        assert (await r.json())["error"] == "too_many_attempts"
        # nothing was stored on the account: it is not locked for anyone
        assert await app.db.scalar("SELECT locked_until FROM users WHERE name = 'ann'") is None
    async with api(config) as (app, client):
        assert (await client.post("/api/v1/auth/login", json={"username": "ann", "password": PASSWORD})).status == 200
        # one address trying many names is stopped too (names that do not exist included)
        statuses = []
        for i in range(7):
            r = await client.post("/api/v1/auth/login", json={"username": f"user{i}", "password": "guess guess"})
            statuses.append(r.status)
        assert statuses[:6] == [401] * 6 and statuses[6] == 429
        assert int(r.headers["Retry-After"]) > 0


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    """Generated requests for every operation of the OpenAPI document, authenticated as an admin
    app token, against the real `shoebox serve`: not one 5xx answer."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings as hyp_settings

    library, data = clone(indexed, tmp_path)
    create_admin(library, data)
    with Daemon(library, data) as daemon:
        session = daemon.login()
        token = daemon.app_token(session["access_token"], ["read", "write", "admin", "thumbnails"])
        headers = {"Authorization": f"Bearer {token}"}
        schema = schemathesis.openapi.from_url(f"{daemon.base}/api/v1/openapi.json", headers=headers)
        schema.validate()
        server_errors: list[str] = []
        statuses: dict[str, int] = {}
        operations = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1

            @hyp_settings(max_examples=25, deadline=None, derandomize=True, database=None,
                          suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            @given(case=operation.as_strategy())
            def run(case: Any) -> None:
                response = case.call(base_url=daemon.base, headers=headers)
                key = f"{case.method} {case.path} {response.status_code}"
                statuses[key] = statuses.get(key, 0) + 1
                if response.status_code >= 500:
                    server_errors.append(f"{case.method} {case.formatted_path} {case.query} {case.body!r:.200}"
                                         f" -> {response.status_code} {response.text[:200]}")

            run()
        print(f"schemathesis: {operations} operations, {sum(statuses.values())} requests:")
        for key in sorted(statuses):
            print(f"  {key}: {statuses[key]}")
        assert operations >= 20
        assert not server_errors, "\n".join(server_errors[:20])
        # the generated requests reached the views (authenticated), not only the validation layer
        assert sum(statuses.values()) >= operations * 5
        assert sum(n for k, n in statuses.items() if k.endswith(" 200")) >= operations
        refused = [k for k in statuses if k.endswith(" 401") and "/auth/login " not in k and "/auth/refresh " not in k]
        assert not refused, f"the admin app token was refused: {refused}"
        # and the daemon is still fine after it all
        from tests.integration.api_support import http_json
        assert http_json("GET", f"{daemon.base}/api/v1/health")[0] == 200

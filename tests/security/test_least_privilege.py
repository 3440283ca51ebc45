"""Issue 9, point 7: least information and least privilege, tried as a client would.

Each test runs the real App (or `shoebox serve`) on a real SQLite file behind a real socket and
asserts what the attacker of its item would (not) get: webhook URLs and their credentials, paths in
/status, readable database and key files, tokens in the log, app tokens that outlive a password,
a replayed grandparent refresh token, big renders through a no-download share link, other users'
albums, webhooks aimed at loopback or the metadata address, and a delivery log that scans ports.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import socket
import stat
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from daemon.auth.roles import Role
from daemon.events.webhooks import create_webhook
from daemon.redaction import install_log_redaction
from tests.integration.api_support import (PASSWORD, Daemon, add_user, api, auth, clone,
                                           create_admin, http_json, login, photo_ids, settings)
from tests.integration.support import free_port, make_config, shoebox
from tests.waiting import wait_until, wait_until_async

NEW_PASSWORD = "a different horse battery"
SECRET_URL = "http://bob:hunter2@192.168.0.9:8123/api/webhook/AbCdEf0123456789xyz?token=SECRETTOKEN1&mode=x"
URL_SECRETS = ("hunter2", "SECRETTOKEN1", "AbCdEf0123456789xyz")


async def people(app: Any, client: Any) -> dict[str, dict[str, str]]:
    """ann (admin), ursula and uli (users), vera (viewer): their Authorization headers."""
    for name, role in (("ann", Role.ADMIN), ("ursula", Role.USER), ("uli", Role.USER), ("vera", Role.VIEWER)):
        await add_user(app, name, role)
    return {name: auth(await login(client, name)) for name in ("ann", "ursula", "uli", "vera")}


# -- a) webhook URLs ------------------------------------------------------------------------------------


async def test_only_admins_see_webhook_urls_and_even_they_never_see_credentials(copy: tuple[Path, Path]) -> None:
    library, data = copy
    async with api(make_config(library, data, **settings())) as (app, client):
        assert app.events is not None
        await app.events.start_transports()  # as `serve`: the subscription runs and shows in /status
        h = await people(app, client)
        r = await client.post("/api/v1/webhooks", json={"url": SECRET_URL}, headers=h["ann"])
        assert r.status == 201, await r.text()
        made = await r.json()
        admin_texts = [json.dumps(made)]
        admin_texts.append(await (await client.get("/api/v1/webhooks", headers=h["ann"])).text())
        admin_texts.append(await (await client.get(f"/api/v1/webhooks/{made['id']}", headers=h["ann"])).text())
        admin_texts.append(await (await client.get("/api/v1/status", headers=h["ann"])).text())
        for text in admin_texts:
            assert not [s for s in URL_SECRETS if s in text], text
        assert made["url"].startswith("http://***@192.168.0.9:8123/") and "token=***" in made["url"]
        status = await (await client.get("/api/v1/status", headers=h["ann"])).json()
        assert "192.168.0.9" in json.dumps(status["events"]), "admins still see where events go"

        for who in ("ursula", "vera"):
            assert (await client.get("/api/v1/webhooks", headers=h[who])).status == 403
            text = await (await client.get("/api/v1/status", headers=h[who])).text()
            assert "192.168.0.9" not in text and "webhook" not in text, text

        listing = await asyncio.to_thread(shoebox, "webhooks", "list", "--library", str(library), "--data", str(data))
        as_json = await asyncio.to_thread(shoebox, "webhooks", "list", "--json", "--library", str(library),
                                          "--data", str(data))
    for out in (listing.stdout, as_json.stdout):
        assert "192.168.0.9:8123" in out and not [s for s in URL_SECRETS if s in out], out


# -- b) /status ---------------------------------------------------------------------------------------


async def test_status_shows_non_admins_counts_but_no_paths(copy: tuple[Path, Path]) -> None:
    library, data = copy
    (library / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a photo")  # a file in error, with a path
    async with api(make_config(library, data, **settings(index__job_retries="0"))) as (app, client):
        await app.index_once()
        h = await people(app, client)
        admin = await (await client.get("/api/v1/status", headers=h["ann"])).json()
        assert admin["library"] == str(library)
        assert [e["path"] for e in admin["errors"]] == ["broken.jpg"]
        for who in ("ursula", "vera"):
            r = await client.get("/api/v1/status", headers=h[who])
            text = await r.text()
            body = json.loads(text)
            assert r.status == 200 and body["photos"]["total"] == admin["photos"]["total"] == 5
            assert body["files"]["errors"] == 1 and "queue" in body and "indexing" in body
            assert str(library) not in text and str(data) not in text and "broken.jpg" not in text, text
            assert not {"library", "errors", "offline_files", "events"} & set(body)
            # an app token of an admin without the admin scope gets the same cut-down answer
        r = await client.post("/api/v1/auth/tokens", json={"name": "dashboard", "scopes": ["read"]}, headers=h["ann"])
        read_only = auth((await r.json())["token"])
        assert "library" not in await (await client.get("/api/v1/status", headers=read_only)).json()


# -- c) file modes ------------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_database_secret_and_data_folder_are_for_the_service_user_only(library: Path, tmp_path: Path) -> None:
    # the documented first step, `shoebox users add`, makes a new data directory private at once
    fresh = tmp_path / "fresh"
    await asyncio.to_thread(create_admin, library, fresh, "ann")
    assert mode(fresh) == 0o700 and mode(fresh / "shoebox.db") == 0o600
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    async with api(make_config(library, data, **settings())) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        await login(client, "ann")  # a write: the -wal and -shm files exist now
        for name in ("shoebox.db", "shoebox.db-wal", "shoebox.db-shm", "secret.key"):
            assert mode(data / name) == 0o600, (name, oct(mode(data / name)))
        assert mode(data) == 0o700
    # a copy restored with wider modes (or an older version's files) is tightened at the next start
    os.chmod(data, 0o755)
    for name in ("shoebox.db", "secret.key"):
        os.chmod(data / name, 0o644)
    async with api(make_config(library, data, **settings())) as (app, client):
        await login(client, "ann")
        assert mode(data) == 0o700
        for name in ("shoebox.db", "shoebox.db-wal", "shoebox.db-shm", "secret.key"):
            assert mode(data / name) == 0o600, (name, oct(mode(data / name)))


# -- d) tokens in logs ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_daemon_run_writes_no_token_to_its_log(copy: tuple[Path, Path]) -> None:
    library, data = copy
    create_admin(library, data, "ann")
    secrets: list[str] = []
    with Daemon(library, data) as daemon:
        tokens = daemon.login("ann")
        secrets += [tokens["access_token"], tokens["thumb_token"], tokens["refresh_token"]]
        status, page = http_json("GET", f"{daemon.base}/api/v1/photos?limit=2", token=tokens["access_token"])
        assert status == 200
        photo = page["photos"][0]
        for base in (daemon.base, daemon.thumbs_base):  # a token in a URL, on both ports
            with __import__("urllib.request").request.urlopen(
                    f"{base}/api/v1/t/{photo['thumb_key']}/tile_224?t={tokens['thumb_token']}", timeout=10) as r:
                assert r.status == 200
        status, share = http_json("POST", f"{daemon.base}/api/v1/shares", {"photos": [photo["id"]]},
                                  token=tokens["access_token"])
        assert status == 201
        secrets.append(share["token"])
        assert http_json("GET", f"{daemon.base}/api/v1/s/{share['token']}")[0] == 200
        app_token = daemon.app_token(tokens["access_token"], ["read"])
        secrets.append(app_token)
        assert http_json("GET", f"{daemon.base}/api/v1/status", token=app_token)[0] == 200
        # a URL with credentials is logged when a webhook is added: masked
        status, _ = http_json("POST", f"{daemon.base}/api/v1/webhooks", {"url": SECRET_URL},
                              token=tokens["access_token"])
        assert status == 201
        # a refresh token used twice: refused and logged as a warning, never with the token
        status, fresh = http_json("POST", f"{daemon.base}/api/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]})
        assert status == 200
        secrets.append(fresh["refresh_token"])
        assert http_json("POST", f"{daemon.base}/api/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]})[0] == 401
        assert http_json("GET", f"{daemon.base}/api/v1/status", token="eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.forged-sig")[0] == 401
    log = daemon_log(daemon)
    assert "added webhook" in log and "192.168.0.9:8123" in log, log[-2000:]
    leaked = [s[:12] for s in [*secrets, *URL_SECRETS] if s in log]
    assert not leaked, f"tokens in the daemon's log: {leaked}\n{log[-3000:]}"


def daemon_log(daemon: Daemon) -> str:
    """What the daemon wrote to stderr (the helper keeps it in a file, or an older one in a pipe)."""
    read = getattr(daemon, "stderr", None)
    if callable(read):
        return str(read())
    assert daemon.proc is not None and daemon.proc.stderr is not None
    return daemon.proc.stderr.read().decode(errors="replace")


def test_the_log_filter_masks_what_a_careless_log_call_would_write() -> None:
    """The daemon's handler filter (installed by `setup_logging`), fed what the code logs when
    something fails: a thumbnail URL with ?t=, request headers, an exception naming a refresh token."""
    out = io.StringIO()
    logger = logging.getLogger("tests.least_privilege")
    handler = logging.StreamHandler(out)
    logger.addHandler(handler)
    logger.propagate = False
    install_log_redaction(logger)
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzaWQiOiJhYmMiLCJ0eXAiOiJ0aHVtYiJ9.c2lnbmF0dXJlLXBhcnQ"
    try:
        logger.error("thumbnail server: %s failed", b"/api/v1/t/abc/fit_720?t=" + jwt.encode())
        logger.error("headers: %s", {"Authorization": f"Bearer {jwt}", "Host": "shoebox.local"})
        logger.error("guest asked for /api/v1/s/AbCdEfGhIjKlMnOpQrStUvWxYz012345/photos/x")
        try:
            raise ValueError("refresh with sbr_Q2xhc3NpZmllZEJ5VGhlRmlsdGVy0123456789 failed")
        except ValueError:
            logger.exception("refresh failed")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert text.count("***") >= 4 and "refresh failed" in text and "Traceback" in text
    for secret in (jwt, "AbCdEfGhIjKlMnOpQrStUvWxYz012345", "Q2xhc3NpZmllZEJ5VGhlRmlsdGVy0123456789"):
        assert secret not in text, text


# -- e) app tokens -----------------------------------------------------------------------------------


async def test_app_tokens_expire_by_default_and_end_with_a_password_change(copy: tuple[Path, Path]) -> None:
    library, data = copy
    async with api(make_config(library, data, **settings())) as (app, client):
        await add_user(app, "ursula", Role.USER)
        session = auth(await login(client, "ursula"))

        async def app_token() -> dict[str, str]:
            r = await client.post("/api/v1/auth/tokens", json={"name": "frame", "scopes": ["read"]}, headers=session)
            made = await r.json()
            assert r.status == 201, made
            return made

        made = await app_token()
        expires = datetime.strptime(made["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        days = (expires - datetime.now(timezone.utc)).total_seconds() / 86400
        assert 364.9 < days <= 365.0, made
        first = auth(made["token"])
        assert (await client.get("/api/v1/photos", headers=first)).status == 200

        # the current password is checked; a wrong one changes nothing
        r = await client.post("/api/v1/auth/password", headers=session,
                              json={"current_password": "wrong password!", "new_password": NEW_PASSWORD})
        assert r.status == 403 and (await r.json())["details"]["field"] == "current_password"
        assert (await client.get("/api/v1/photos", headers=first)).status == 200
        r = await client.post("/api/v1/auth/password", headers=first,  # not with an app token
                              json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
        assert r.status == 403
        r = await client.post("/api/v1/auth/password", headers=session,
                              json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
        assert r.status == 204, await r.text()
        assert (await client.get("/api/v1/photos", headers=first)).status == 401, "the app token outlived the password"
        assert (await client.get("/api/v1/photos", headers=session)).status == 401, "the session outlived the password"

        # asked to keep them, the tokens keep working
        session = auth(await login(client, "ursula", NEW_PASSWORD))
        kept = auth((await app_token())["token"])
        r = await client.post("/api/v1/auth/password", headers=session,
                              json={"current_password": NEW_PASSWORD, "new_password": PASSWORD, "keep_tokens": True})
        assert r.status == 204
        assert (await client.get("/api/v1/photos", headers=kept)).status == 200

        # the command line: the same, with --keep-tokens to keep them
        session = auth(await login(client, "ursula"))
        later = auth((await app_token())["token"])
        await asyncio.to_thread(shoebox, "users", "passwd", "ursula", "--password-stdin", "--keep-tokens",
                                "--library", str(library), "--data", str(data), input=NEW_PASSWORD + "\n")
        assert (await client.get("/api/v1/photos", headers=later)).status == 200
        out = await asyncio.to_thread(shoebox, "users", "passwd", "ursula", "--password-stdin", "--library",
                                      str(library), "--data", str(data), input=PASSWORD + "\n")
        assert "app tokens revoked" in out.stderr
        for token in (later, kept):
            assert (await client.get("/api/v1/photos", headers=token)).status == 401

        # a stolen session cannot guess the password faster than the login page could
        session = auth(await login(client, "ursula"))
        answers = []
        for _ in range(30):
            r = await client.post("/api/v1/auth/password", headers=session,
                                  json={"current_password": "guess-guess-guess", "new_password": NEW_PASSWORD})
            answers.append(r.status)
            if r.status == 429:
                assert int(r.headers["Retry-After"]) >= 1
                break
        assert answers[-1] == 429 and set(answers[:-1]) == {403}, answers


# -- f) refresh-token chain ------------------------------------------------------------------------------


async def test_reusing_a_grandparent_refresh_token_ends_the_session(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ursula", Role.USER)
        first = await login(client, "ursula")

        async def refresh(token: str) -> Any:
            return await client.post("/api/v1/auth/refresh", json={"refresh_token": token})

        second = await (await refresh(first["refresh_token"])).json()
        third = await (await refresh(second["refresh_token"])).json()
        assert (await client.get("/api/v1/photos", headers=auth(third))).status == 200
        # a thief replays the grandparent: refused, and the whole session ends
        r = await refresh(first["refresh_token"])
        assert r.status == 401 and "already used" in (await r.json())["message"]
        assert (await refresh(third["refresh_token"])).status == 401, "the owner's current token still works"
        assert (await client.get("/api/v1/photos", headers=auth(third))).status == 401
        # other sessions of the same user are not touched
        other = await login(client, "ursula")
        assert (await refresh(other["refresh_token"])).status == 200


# -- g) share links without downloads ----------------------------------------------------------------


async def test_a_guest_without_downloads_gets_no_size_above_fit_1920(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        h = await people(app, client)
        ids = await photo_ids(app)
        canon = ids["Canon_40D.jpg"]
        key = (await app.db.fetchone("SELECT thumb_key FROM photos WHERE uid = ?", (canon,)))["thumb_key"]
        links = {}
        for download in (False, True):
            r = await client.post("/api/v1/shares", json={"photos": [canon], "download": download}, headers=h["ann"])
            links[download] = (await r.json())["token"]
        S = "/api/v1/s"
        closed = links[False]
        assert (await client.get(f"{S}/{closed}/t/{key}/tile_224")).status == 200
        assert (await client.get(f"{S}/{closed}/t/{key}/fit_1920")).status != 403
        for size in ("fit_2560", "fit_3840"):
            r = await client.get(f"{S}/{closed}/t/{key}/{size}")
            assert r.status == 403 and "fit_1920" in (await r.json())["message"], size
        assert (await client.get(f"{S}/{closed}/photos/{canon}/original")).status == 403
        assert (await client.get(f"{S}/{closed}/photos/{canon}/original?download=true")).status == 403
        # with downloads allowed the big sizes and the original are the guest's to have
        opened = links[True]
        assert (await client.get(f"{S}/{opened}/t/{key}/fit_2560")).status in (200, 404)
        assert (await client.get(f"{S}/{opened}/photos/{canon}/original")).status == 200


# -- h) album owners -------------------------------------------------------------------------------------


async def test_users_change_only_their_own_albums_and_admins_any(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        h = await people(app, client)
        ids = list((await photo_ids(app)).values())
        r = await client.post("/api/v1/albums", json={"title": "Ursula's trip", "photos": ids[:2]}, headers=h["ursula"])
        album = await r.json()
        assert r.status == 201 and album["owner"] == "ursula"
        path = f"/api/v1/albums/{album['id']}"
        for method, suffix, body in [("PATCH", "", {"title": "mine now"}), ("DELETE", "", None),
                                     ("POST", "/photos", {"ids": ids[2:3]}), ("POST", "/photos/remove", {"ids": ids[:1]}),
                                     ("POST", "/photos/move", {"photo": ids[0], "after": ids[1]})]:
            r = await client.request(method, path + suffix, json=body, headers=h["uli"])
            assert r.status == 403, (method, suffix, r.status)
            assert "ursula" in (await r.json())["message"]
        r = await client.get(path, headers=h["uli"])  # reading stays open to everyone who may read
        got = await r.json()
        assert r.status == 200 and got["title"] == "Ursula's trip" and len(got["photos"]) == 2
        r = await client.patch(path, json={"title": "Trip"}, headers=h["ursula"])
        assert r.status == 200 and (await r.json())["title"] == "Trip"
        assert (await client.patch(path, json={"title": "Tidied"}, headers=h["ann"])).status == 200
        assert (await client.delete(path, headers=h["ann"])).status == 204
        assert (await client.get(path, headers=h["ursula"])).status == 404


# -- i) webhook targets and the delivery log -----------------------------------------------------------------


async def test_webhooks_to_loopback_link_local_and_metadata_addresses_are_refused(copy: tuple[Path, Path]) -> None:
    library, data = copy
    async with api(make_config(library, data, **settings(webhooks__allow_private_targets="127.0.0.1:9000"))) as (app, client):
        h = await people(app, client)
        for url, why in [("http://127.0.0.1:9/hook", "loopback"), ("http://169.254.169.254/latest/meta-data/", "link-local"),
                         ("http://[::1]:8080/hook", "loopback"), ("http://0.0.0.0:8420/", "unspecified"),
                         ("http://localhost:8420/api/v1/setup", "loopback"), ("http://[fe80::1]/x", "link-local"),
                         ("http://[::ffff:127.0.0.1]/x", "loopback"), ("http://224.0.0.1/x", "multicast"),
                         ("http://127.0.0.1:9001/hook", "loopback")]:
            r = await client.post("/api/v1/webhooks", json={"url": url}, headers=h["ann"])
            body = await r.json()
            assert r.status == 400 and body["details"]["field"] == "url" and why in body["message"], (url, body)
            assert "allow_private_targets" in body["message"]
        assert await app.db.scalar("SELECT count(*) FROM webhooks") == 0
        # the address:port the admin allowed, and LAN receivers (Home Assistant), are fine
        for url in ("http://127.0.0.1:9000/hook", "http://192.168.1.20:8123/api/webhook/x", "http://10.0.0.5/h"):
            r = await client.post("/api/v1/webhooks", json={"url": url}, headers=h["ann"])
            assert r.status == 201, (url, await r.text())
        made = (await r.json())["id"]
        r = await client.patch(f"/api/v1/webhooks/{made}", json={"url": "http://169.254.169.254/"}, headers=h["ann"])
        assert r.status == 400 and "link-local" in (await r.json())["message"]
    out = await asyncio.to_thread(shoebox, "webhooks", "add", "http://169.254.169.254/", "--library", str(library),
                                  "--data", str(data), check=False)
    assert out.returncode == 2 and "link-local" in out.stderr
    # a misspelt exception is a configuration error at start, not a silently open (or dead) webhook
    out = await asyncio.to_thread(shoebox, "config", "--webhooks-allow-private-targets", "127.0.0.1:99999",
                                  check=False)
    assert out.returncode == 2 and "allow_private_targets" in out.stderr


class Banner:
    """A TCP service that is not HTTP: it sends a banner with a secret in it and hangs up."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self.connections = 0

    async def start(self) -> "Banner":
        async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.write(b"SSH-2.0-OpenSSH_9.2 internal-db-admin-7731\r\n")
            await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(greet, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_the_delivery_log_does_not_tell_a_closed_port_from_a_banner_or_a_blocked_name(
        copy: tuple[Path, Path]) -> None:
    library, data = copy
    closed = free_port()  # nothing listens there: the connection is refused at once
    banner = await Banner().start()
    hidden = await Banner().start()  # a loopback service the admin did not allow
    timeout = 1.5
    allowed = f"127.0.0.1:{closed}, 127.0.0.1:{banner.port}"
    config = make_config(library, data, **settings(webhooks__allow_private_targets=allowed, webhooks__timeout=str(timeout),
                                                   webhooks__retry_base="60", webhooks__max_failures="5"))
    try:
        async with api(config) as (app, client):
            assert app.db is not None and app.events is not None
            h = await people(app, client)
            subs = {}
            for name, url in (("closed", f"http://127.0.0.1:{closed}/hook"), ("banner", f"http://127.0.0.1:{banner.port}/"),
                              ("rebound", f"http://localhost:{hidden.port}/")):
                if name == "rebound":  # a name stored before (CLI, older version): checked again at delivery
                    sub = await app.db.write(lambda c: create_webhook(c, url, ["album.*"], "s" * 20))
                else:
                    r = await client.post("/api/v1/webhooks", json={"url": url, "events": ["album.*"]}, headers=h["ann"])
                    assert r.status == 201, await r.text()
                    sub = await r.json()
                subs[name] = sub["id"] if isinstance(sub, dict) else sub.id
            await app.events.start_transports()
            started = time.monotonic()
            assert (await client.post("/api/v1/albums", json={"title": "x"}, headers=h["ann"])).status == 201

            async def logged(name: str) -> list[dict[str, Any]]:
                r = await client.get(f"/api/v1/webhooks/{subs[name]}/deliveries", headers=h["ann"])
                return await r.json()

            refused_after = await wait_until_async(lambda: logged("closed"), timeout=30)
            closed_at = time.monotonic() - started
            banner_log = await wait_until_async(lambda: logged("banner"), timeout=30)
            rebound_log = await wait_until_async(lambda: logged("rebound"), timeout=30)
    finally:
        await banner.stop()
        await hidden.stop()
    assert refused_after[0]["error"] == banner_log[0]["error"] == "connection failed"
    assert refused_after[0]["status"] is None and refused_after[0]["latency_ms"] is None
    assert closed_at >= timeout - 0.1, f"a refused connection was recorded after {closed_at:.2f} s, before the timeout"
    # the name resolves to loopback at delivery time: refused by the resolver, nothing connected
    assert rebound_log[0]["error"] == "target not allowed" and hidden.connections == 0
    assert banner.connections >= 1, "the banner service was never reached: the test proves nothing"
    everything = json.dumps([refused_after, banner_log, rebound_log])
    assert "OpenSSH" not in everything and "7731" not in everything and "Errno" not in everything
    assert "refused" not in everything.lower()

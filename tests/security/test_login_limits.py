"""Issue 9, point 4: login and share-password limits that hold under concurrency.

A real App on a real SQLite file behind a real loopback port; attackers and the owner connect from
different loopback addresses (127.0.0.x: one machine, but the daemon sees each as its own client),
as devices on a home network would. Asserted as a client sees it: how many guesses were answered
401 (each one a password hash checked, which the daemon's log confirms) and how many 429.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest

from daemon.auth.roles import Role
from tests.integration.api_support import PASSWORD, add_user, api, auth, clone, login, settings
from tests.integration.support import make_config

LOGIN = "/api/v1/auth/login"
S = "/api/v1/s"


@asynccontextmanager
async def client_at(address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client whose connections come from `address` (a loopback address of its own)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0), limit=100)) as s:
        yield s


async def _post(session: aiohttp.ClientSession, url: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any], Any]:
    async with session.post(url, json=body) as r:
        return r.status, await r.json(), r.headers.get("Retry-After")


def _failed_checks(caplog: pytest.LogCaptureFixture, name: str) -> int:
    return sum(1 for r in caplog.records if r.getMessage().startswith(f"failed login for {name!r}"))


async def test_parallel_guesses_get_only_the_allowed_checks(indexed: tuple[Path, Path], tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="daemon.auth.service")
    async with api(make_config(*clone(indexed, tmp_path), **settings())) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        url = client.make_url(LOGIN)
        async with client_at("127.0.0.1") as attacker:
            answers = await asyncio.gather(*(_post(attacker, url, {"username": "ann", "password": f"guess {i}"})
                                             for i in range(30)))
            statuses = [a[0] for a in answers]
            assert statuses.count(401) == 5 and statuses.count(429) == 25, statuses
            assert _failed_checks(caplog, "ann") == 5, "only the allowed guesses may cost a password check"
            for status, body, retry in answers:
                if status == 429:
                    assert body["error"] == "too_many_attempts" and int(retry) >= 1
            # even the right password is not checked from the guessing address while it backs off
            status, body, retry = await _post(attacker, url, {"username": "ann", "password": PASSWORD})
            assert status == 429 and int(retry) >= 1 and "this address" in body["message"]
        # the owner, from another device, logs in at once: the account itself is never locked
        async with client_at("127.0.0.2") as owner:
            status, body, _ = await _post(owner, url, {"username": "ann", "password": PASSWORD})
            assert status == 200, body
        assert _failed_checks(caplog, "ann") == 5


async def test_owner_logs_in_during_a_distributed_attack(indexed: tuple[Path, Path], tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="daemon.auth.service")
    config = make_config(*clone(indexed, tmp_path), **settings(auth__account_failures=8))
    async with api(config) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        url = client.make_url(LOGIN)

        async def attack(address: str) -> list[int]:
            async with client_at(address) as s:
                got = await asyncio.gather(*(_post(s, url, {"username": "ann", "password": f"{address} {i}"})
                                             for i in range(10)))
                return [g[0] for g in got]

        async def owner_logs_in() -> int:
            async with client_at("127.0.0.2") as s:
                for _ in range(10):
                    status, body, retry = await _post(s, url, {"username": "ann", "password": PASSWORD})
                    if status != 429:
                        return status
                    assert int(retry) <= 2 and "slowed down" in body["message"], body
                    await asyncio.sleep(int(retry))  # as the server asks (Retry-After)
                return 429

        attackers = [f"127.0.0.{i}" for i in range(3, 7)]
        *attacked, owner = await asyncio.gather(*(attack(a) for a in attackers), owner_logs_in())
        assert owner == 200, "the owner, whose address never failed, must get in with the right password"
        checked = sum(s.count(401) for s in attacked)
        assert checked <= 5 * len(attackers) and all(s.count(401) <= 5 for s in attacked), attacked
        assert _failed_checks(caplog, "ann") == checked
        # the account is now under attack: a device that failed on it must wait out its backoff
        failing = next(a for a, got in zip(attackers, attacked) if 401 in got)
        async with client_at(failing) as s:
            status, _, retry = await _post(s, url, {"username": "ann", "password": PASSWORD})
            assert status == 429 and int(retry) >= 1
        # and a new device gets its one check, then backs off at once
        async with client_at("127.0.0.9") as s:
            first, _, retry = await _post(s, url, {"username": "ann", "password": "one more guess"})
            if first == 429:  # the account's one check a second was just taken: wait as told
                await asyncio.sleep(int(retry))  # as the server asks (Retry-After)
                first, _, _ = await _post(s, url, {"username": "ann", "password": "one more guess"})
            assert first == 401
            status, _, _ = await _post(s, url, {"username": "ann", "password": "and another"})
            assert status == 429


async def _share(client: Any, h: dict[str, str], password: str | None = None) -> dict[str, Any]:
    photos = await (await client.get("/api/v1/photos", headers=h)).json()
    body: dict[str, Any] = {"photos": [photos["photos"][0]["id"]]}
    if password:
        body["password"] = password
    r = await client.post("/api/v1/shares", json=body, headers=h)
    assert r.status == 201, await r.text()
    return await r.json()


async def test_share_passwords_are_limited_like_logins(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    async with api(make_config(*clone(indexed, tmp_path), **settings())) as (app, client):
        await add_user(app, "ann", Role.USER)
        h = auth(await login(client, "ann"))
        link = await _share(client, h, password="open sesame")
        url = client.make_url(f"{S}/{link['token']}/unlock")
        async with client_at("127.0.0.3") as guesser:
            answers = await asyncio.gather(*(_post(guesser, url, {"password": f"guess {i}"}) for i in range(30)))
            statuses = [a[0] for a in answers]
            assert statuses.count(401) == 5 and statuses.count(429) == 25, statuses
            assert all(int(a[2]) >= 1 for a in answers if a[0] == 429)
            status, _, retry = await _post(guesser, url, {"password": "open sesame"})
            assert status == 429 and int(retry) >= 1, "the guessing address backs off, right password or not"
        async with client_at("127.0.0.4") as guest:
            status, body, _ = await _post(guest, url, {"password": "open sesame"})
            assert status == 200 and body["session"], body


async def test_share_token_guessing_is_limited(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    async with api(make_config(*clone(indexed, tmp_path), **settings())) as (app, client):
        await add_user(app, "ann", Role.USER)
        h = auth(await login(client, "ann"))
        link = await _share(client, h)
        real = client.make_url(f"{S}/{link['token']}")
        async with client_at("127.0.0.5") as guesser:
            statuses, retry = [], None
            for _ in range(25):
                async with guesser.get(client.make_url(f"{S}/{secrets.token_urlsafe(24)}")) as r:
                    statuses.append(r.status)
                    retry = r.headers.get("Retry-After")
            assert statuses == [404] * 20 + [429] * 5, statuses
            assert int(retry) >= 1
            # blocked on every guest route, so a 429 never tells a real token from a made-up one
            async with guesser.get(real) as r:
                assert r.status == 429
            async with guesser.post(client.make_url(f"{S}/{link['token']}/unlock"), json={"password": "x" * 8}) as r:
                assert r.status == 429
        async with client_at("127.0.0.6") as guest:
            async with guest.get(real) as r:
                assert r.status == 200 and len((await r.json())["photos"]) == 1
        # a revoked link that a guest keeps reloading is not guessing
        assert (await client.delete(f"/api/v1/shares/{link['id']}", headers=h)).status == 204
        async with client_at("127.0.0.7") as reloader:
            for _ in range(25):
                async with reloader.get(real) as r:
                    assert r.status == 404

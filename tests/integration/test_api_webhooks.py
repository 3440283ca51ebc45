"""The webhook admin API against a real App, the real indexer and a real aiohttp receiver on
loopback: a subscription made through the API receives signed events for a photo dropped into
the library, its delivery log shows the attempt, it can be turned off and on and deleted, and
only admins may touch any of it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from daemon.auth.roles import Role
from daemon.events.webhooks import SIGNATURE_HEADER, verify
from tests.integration.api_support import add_user, api, auth, login, settings
from tests.integration.support import make_config
from tests.integration.test_events_helpers import distinct_copies
from tests.integration.test_events_webhooks import JOLLA, Receiver
from tests.waiting import wait_until_async


async def test_admin_manages_a_subscription_that_gets_signed_events(library: Path, tmp_path: Path,
                                                                    samples: Path) -> None:
    receiver = await Receiver().start()
    config = make_config(library, tmp_path / "data", **settings(webhooks__retry_base="0.2", webhooks__retry_max="1",
                                                                    webhooks__allow_private_targets="127.0.0.1"))
    try:
        async with api(config) as (app, client):
            assert app.events is not None
            await app.events.start_transports()  # what `shoebox serve` does: the webhook manager runs
            await add_user(app, "ann", Role.ADMIN)
            h = auth(await login(client, "ann"))

            r = await client.post("/api/v1/webhooks", json={"url": receiver.url("/hook"), "events": ["photo.added"]},
                                  headers=h)
            assert r.status == 201, await r.text()
            made = await r.json()
            secret = made["secret"]
            assert len(secret) >= 16 and made["enabled"] is True and made["events"] == ["photo.added"]
            hook = f"/api/v1/webhooks/{made['id']}"
            # the secret is shown once: never again in listings or reads
            listed = await (await client.get("/api/v1/webhooks", headers=h)).json()
            assert [w["id"] for w in listed] == [made["id"]] and listed[0]["secret"] == "***"
            assert (await (await client.get(hook, headers=h)).json())["secret"] == "***"
            assert secret not in await (await client.get("/api/v1/webhooks", headers=h)).text()

            # a photo lands in the library: the receiver gets a signed photo.added (and nothing else)
            distinct_copies(samples / JOLLA, library, 1, prefix="A")
            await app.index_once()
            await receiver.wait(lambda: len(receiver.ok()) >= 1, 20, "the photo.added delivery")
            hit = receiver.ok()[0]
            assert hit.event()["type"] == "photo.added"
            assert verify(secret, hit.headers[SIGNATURE_HEADER], hit.body)
            assert not verify("another-secret-of-some-length", hit.headers[SIGNATURE_HEADER], hit.body)
            # the sender records the delivery after the receiver has answered: wait for the record
            async def deliveries() -> list[dict]:
                return await (await client.get(f"{hook}/deliveries", headers=h)).json()

            log = await wait_until_async(deliveries, 10, interval=0.1, what="the delivery record")
            assert log[0]["ok"] is True and log[0]["status"] == 204 and log[0]["event_id"] == hit.event()["id"]
            assert log[0]["latency_ms"] is not None

            # turned off: the next photo is not delivered; on again: the one after that is
            r = await client.patch(hook, json={"enabled": False}, headers=h)
            assert r.status == 200 and (await r.json())["enabled"] is False
            distinct_copies(samples / JOLLA, library, 1, prefix="B")
            await app.index_once()
            await app.events.bus.flush()
            await asyncio.sleep(1.0)  # not a wait: time for a delivery that must not happen
            assert len(receiver.ok()) == 1
            r = await client.patch(hook, json={"enabled": True, "url": receiver.url("/hook2")}, headers=h)
            assert r.status == 200 and (await r.json())["url"].endswith("/hook2")
            distinct_copies(samples / JOLLA, library, 1, prefix="C")
            await app.index_once()
            await receiver.wait(lambda: len(receiver.ok("/hook2")) >= 1, 20, "the delivery after re-enabling")
            assert receiver.ok("/hook2")[0].event()["data"] != hit.event()["data"]
            assert len(receiver.ok("/hook")) == 1

            # deleted: gone from the API and from the running transports
            assert (await client.delete(hook, headers=h)).status == 204
            assert (await client.get(hook, headers=h)).status == 404
            assert (await client.get(f"{hook}/deliveries", headers=h)).status == 404
            assert (await client.delete(hook, headers=h)).status == 404
            assert app.events.webhooks is not None and not app.events.webhooks.transports
    finally:
        await receiver.stop()


async def test_bad_subscriptions_are_refused_naming_the_field(library: Path, tmp_path: Path) -> None:
    async with api(make_config(library, tmp_path / "data", **settings())) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        h = auth(await login(client, "ann"))
        for body, status, field in [
            ({"url": "ftp://example.org/hook"}, 400, "url"),
            ({"url": "javascript:alert(1)"}, 400, "url"),
            ({"url": "http://"}, 400, "url"),
            ({"url": "file:///etc/passwd"}, 400, "url"),
            ({"url": "http://192.168.0.9:9/hook", "events": ["photo.eaten"]}, 400, "events"),
            ({"url": "http://192.168.0.9:9/hook", "secret": "short"}, 422, "body.secret"),
            ({"url": "http://192.168.0.9:9/hook", "owner": "me"}, 422, "body.owner"),
            ({}, 422, "body.url"),
        ]:
            r = await client.post("/api/v1/webhooks", json=body, headers=h)
            answer = await r.json()
            assert r.status == status, (body, answer)
            assert field in str(answer["details"]), (body, answer)
        assert await app.db.scalar("SELECT count(*) FROM webhooks") == 0
        # a given secret is kept as given, and a PATCH cannot null the URL
        r = await client.post("/api/v1/webhooks", json={"url": "https://example.org/h", "secret": "s" * 20},
                              headers=h)
        made = await r.json()
        assert r.status == 201 and made["secret"] == "s" * 20
        r = await client.patch(f"/api/v1/webhooks/{made['id']}", json={"url": None}, headers=h)
        assert r.status == 400 and (await r.json())["details"]["field"] == "url"
        r = await client.patch(f"/api/v1/webhooks/{made['id']}", json={"url": "gopher://x"}, headers=h)
        assert r.status == 400
        assert (await (await client.get(f"/api/v1/webhooks/{made['id']}", headers=h)).json())["url"] == \
            "https://example.org/h"
        assert (await client.get("/api/v1/webhooks/0", headers=h)).status == 422
        assert (await client.get("/api/v1/webhooks/999", headers=h)).status == 404


async def test_only_admins_reach_webhooks(library: Path, tmp_path: Path) -> None:
    async with api(make_config(library, tmp_path / "data", **settings())) as (app, client):
        for name, role in (("ann", Role.ADMIN), ("ursula", Role.USER), ("vera", Role.VIEWER)):
            await add_user(app, name, role)
        admin = auth(await login(client, "ann"))
        r = await client.post("/api/v1/webhooks", json={"url": "https://example.org/h"}, headers=admin)
        wid = (await r.json())["id"]
        for who in ("ursula", "vera"):
            h = auth(await login(client, who))
            for method, path, body in [
                ("GET", "/api/v1/webhooks", None), ("POST", "/api/v1/webhooks", {"url": "https://evil.example/x"}),
                ("GET", f"/api/v1/webhooks/{wid}", None), ("PATCH", f"/api/v1/webhooks/{wid}", {"enabled": False}),
                ("DELETE", f"/api/v1/webhooks/{wid}", None), ("GET", f"/api/v1/webhooks/{wid}/deliveries", None),
            ]:
                r = await client.request(method, path, json=body, headers=h)
                assert r.status == 403, f"{who} {method} {path}: {r.status}"
                assert (await client.request(method, path, json=body)).status == 401
        # nothing changed
        listed = await (await client.get("/api/v1/webhooks", headers=admin)).json()
        assert [(w["id"], w["url"], w["enabled"]) for w in listed] == [(wid, "https://example.org/h", True)]

"""Webhooks against a real HTTP receiver (aiohttp on loopback) and the real App indexing real
photos: retries that survive a restart, signatures a receiver can verify, redirects refused, a
failing subscription disabled with an event, and a slow receiver that does not slow indexing.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from daemon.app import App
from daemon.events.webhooks import SIGNATURE_HEADER, create_webhook, verify
from tests.integration.support import free_port, make_config, shoebox
from tests.integration.test_events_helpers import distinct_copies
from tests.waiting import wait_until_async

JOLLA = "exif-samples/jpg/mobile/jolla.jpg"
SECRET = "a-long-enough-shared-secret-for-tests"
# The receiver runs on loopback, which webhooks refuse unless an admin allows it.
LOOPBACK = "127.0.0.1"
LOOPBACK_ENV = {"SHOEBOX_WEBHOOKS_ALLOW_PRIVATE_TARGETS": LOOPBACK}


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int

    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver: fails the first `fail_first` requests with HTTP 500, takes `delay`
    seconds to answer, and offers /moved (a redirect to /target)."""

    fail_first: int = 0
    delay: float = 0.0
    hits: list[Hit] = field(default_factory=list)
    port: int = 0
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path == "/moved":
            status = 302
        elif len([h for h in self.hits if h.path == request.path]) < self.fail_first:
            status = 500
        else:
            status = 204
        if self.delay:
            await asyncio.sleep(self.delay)  # not a wait: a receiver this slow is what the test needs
        self.hits.append(Hit(request.path, dict(request.headers), body, time.time(), status))
        if status == 302:
            raise web.HTTPFound(f"http://127.0.0.1:{self.port}/target")
        return web.Response(status=status)

    async def start(self) -> "Receiver":
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ok(self, path: str = "/hook") -> list[Hit]:
        return [h for h in self.hits if h.path == path and h.status == 204]

    async def wait(self, predicate: Any, timeout: float, what: str) -> None:
        await wait_until_async(predicate, timeout, what=what)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def started(config: Any) -> App:
    app = App(config)
    await app.start()
    app.start_background()
    return app


def rows(data: Path, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    with sqlite3.connect(data / "shoebox.db") as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, params).fetchall()


async def test_failing_receiver_gets_every_event_once_it_recovers_even_across_a_restart(
        library: Path, tmp_path: Path, samples: Path) -> None:
    receiver = await Receiver(fail_first=3).start()
    data = tmp_path / "data"
    distinct_copies(samples / JOLLA, library, 3)
    # the subscription is made with the real command line, secret on standard input
    out = await asyncio.to_thread(shoebox, "webhooks", "add", receiver.url("/hook"), "--events", "photo.added",
                                  "--secret-stdin", "--library", str(library), "--data", str(data), input=SECRET + "\n",
                                  env=LOOPBACK_ENV)
    assert out.stdout.startswith("webhook 1:") and SECRET not in out.stdout
    config = make_config(library, data, webhooks__retry_base="0.6", webhooks__retry_max="5", tagging__enabled="false",
                         webhooks__allow_private_targets=LOOPBACK)
    app = await started(config)
    try:
        await app.index_once()
        await receiver.wait(lambda: len(receiver.hits) >= 2, 20, "two failed attempts")
    finally:
        await app.stop()
    hook = rows(data, "SELECT failures, retry_at, enabled FROM webhooks WHERE id = 1")[0]
    assert hook["failures"] >= 2 and hook["enabled"] == 1 and hook["retry_at"] is not None
    tries_before = len(receiver.hits)
    retry_at = hook["retry_at"]

    app = await started(config)  # the daemon restarts while the receiver is still failing
    try:
        await receiver.wait(lambda: len(receiver.ok()) == 3, 60, "three successful deliveries")
        await asyncio.sleep(0.5)  # not a wait: time for a duplicate delivery to show (there must be none)
    finally:
        await app.stop()
        await receiver.stop()
    first_after_restart = receiver.hits[tries_before]
    assert first_after_restart.at >= retry_at - 0.05, "the persisted backoff was not honoured after the restart"
    assert all(h.status == 500 for h in receiver.hits[:3]) and len(receiver.hits) == 3 + 3
    # every request is signed, the signature verifies over the exact body, and a tampered body fails
    for h in receiver.hits:
        assert verify(SECRET, h.headers[SIGNATURE_HEADER], h.body)
        assert h.headers["X-Shoebox-Delivery"] == h.event()["id"]
        assert h.headers["Content-Type"] == "application/json"
    assert not verify(SECRET, receiver.hits[-1].headers[SIGNATURE_HEADER], receiver.hits[-1].body + b" ")
    assert not verify("another-secret-of-enough-length", receiver.hits[-1].headers[SIGNATURE_HEADER],
                      receiver.hits[-1].body)
    delivered = [h.event() for h in receiver.ok()]
    ids = [e["id"] for e in delivered]
    assert len(set(ids)) == 3 and ids == sorted(ids), "each event once, in order"
    assert {e["type"] for e in delivered} == {"photo.added"}
    assert sorted(e["data"]["path"] for e in delivered) == ["IMG_0000.jpg", "IMG_0001.jpg", "IMG_0002.jpg"]
    assert receiver.hits[0].event()["id"] == ids[0], "the failed event is retried before the next one"
    # the delivery log as the command line shows it
    log = json.loads((await asyncio.to_thread(shoebox, "webhooks", "deliveries", "1", "--json", "--library",
                                              str(library), "--data", str(data))).stdout)
    assert [r["ok"] for r in reversed(log)] == [False, False, False, True, True, True]
    assert log[-1]["status"] == 500 and log[-1]["error"] == "HTTP 500" and log[0]["latency_ms"] is not None
    assert rows(data, "SELECT failures FROM webhooks WHERE id = 1")[0]["failures"] == 0


async def test_redirect_is_not_followed_and_a_failing_subscription_is_disabled_with_an_event(
        library: Path, tmp_path: Path, samples: Path) -> None:
    receiver = await Receiver().start()
    data = tmp_path / "data"
    distinct_copies(samples / JOLLA, library, 1)
    config = make_config(library, data, webhooks__retry_base="0.1", webhooks__max_failures="2",
                         webhooks__allow_private_targets=LOOPBACK,
                         tagging__enabled="false")
    app = App(config)
    await app.start()
    try:
        assert app.db is not None
        moved = await app.db.write(lambda c: create_webhook(c, receiver.url("/moved"), ["photo.added"], SECRET))
        await app.db.write(lambda c: create_webhook(c, receiver.url("/watch"), ["webhook.*"], SECRET))
        app.start_background()
        await app.index_once()
        await receiver.wait(lambda: receiver.ok("/watch"), 20, "the webhook.disabled event")
        status = await app.status()
    finally:
        await app.stop()
        await receiver.stop()
    assert not [h for h in receiver.hits if h.path == "/target"], "a redirect was followed"
    assert len([h for h in receiver.hits if h.path == "/moved"]) == 2
    disabled = receiver.ok("/watch")[0].event()
    assert disabled["type"] == "webhook.disabled" and disabled["data"]["webhook"] == moved.id
    assert "2 failed deliveries in a row" in disabled["data"]["reason"]
    hook = rows(data, "SELECT enabled, disabled_reason FROM webhooks WHERE id = ?", (moved.id,))[0]
    assert hook["enabled"] == 0 and "redirect" in hook["disabled_reason"]
    log = rows(data, "SELECT status, error FROM webhook_deliveries WHERE webhook_id = ?", (moved.id,))
    assert [r["status"] for r in log] == [302, 302]
    # the log says what happened, never what the receiver answered (no Location, no body)
    assert "redirects are not followed" in log[0]["error"] and "/target" not in log[0]["error"]
    assert "webhook:2" in status["events"]["transports"]


async def test_a_slow_receiver_does_not_slow_indexing(library: Path, tmp_path: Path, samples: Path) -> None:
    receiver = await Receiver(delay=0.5).start()
    data = tmp_path / "data"
    count = 8
    distinct_copies(samples / JOLLA, library, count)
    config = make_config(library, data, webhooks__concurrency="4", tagging__enabled="false",
                         webhooks__allow_private_targets=LOOPBACK)
    app = App(config)
    await app.start()
    try:
        assert app.db is not None
        await app.db.write(lambda c: create_webhook(c, receiver.url("/hook"), [], SECRET))
        app.start_background()
        started_at = time.monotonic()
        await app.index_once()
        indexing = time.monotonic() - started_at
        answered_when_indexed = len(receiver.hits)
        expected = 2 * count + 2  # added + indexed per photo, index.started, index.finished
        await receiver.wait(lambda: len(receiver.ok()) == expected, 60, "every event at the slow receiver")
    finally:
        await app.stop()
        await receiver.stop()
    # Deliveries are one at a time per subscription (in order): 18 x 0.5 s = 9 s of answering.
    assert answered_when_indexed < expected / 2, (indexing, answered_when_indexed)
    assert indexing < expected * 0.5 / 2, f"indexing took {indexing:.1f} s: it waited for the receiver"
    ids = [h.event()["id"] for h in receiver.ok()]
    assert ids == sorted(ids) and len(set(ids)) == expected

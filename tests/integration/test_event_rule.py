"""One rule for events: a change stages its events in the transaction that makes it, and they are
delivered from the outbox after the commit (issue 16).

- A tag job's `person.recognized` survives a kill -9 of the real `shoebox serve` between its commit
  and its delivery (the broker is down, so nothing can be delivered), and arrives exactly once
  (de-duplicated by id) when the daemon comes back with the broker up.
- Archiving a photo raises `photo.archived`, restoring it `photo.updated`.
- Pausing indexing by the API and resuming it by MQTT `cmd/index` is one state: the queue really
  resumes and the new photo is indexed.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path
from typing import Any, Awaitable, Callable

from daemon.auth.roles import Role
from tests.conftest import copy_sample
from tests.integration.api_support import add_user, api, auth, events_of, login, photo_ids, settings
from tests.integration.support import by_path, free_port, index, make_config, shoebox
from tests.integration.test_events_helpers import Broker, Listener, events_of as mqtt_events, serve, stop
from tests.waiting import wait_until, wait_until_async


def outbox(data: Path, event_type: str) -> list[sqlite3.Row]:
    """The outbox rows of one type, as the daemon left them in its database."""
    try:
        with sqlite3.connect(f"file:{data / 'shoebox.db'}?mode=ro", uri=True, timeout=5) as conn:
            conn.row_factory = sqlite3.Row
            return conn.execute("SELECT seq, id, data FROM events WHERE type = ?", (event_type,)).fetchall()
    except sqlite3.Error:
        return []


def test_person_recognized_survives_a_kill_9_between_the_tag_commit_and_its_delivery(
        library: Path, tmp_path: Path, samples: Path) -> None:
    data = tmp_path / "data"
    # Ann's (Obama's) face is known and named before the daemon ever sees the second photo of him.
    # (MQTT is configured from the start, so its place in the outbox keeps every event from now on.)
    port = free_port()
    copy_sample(samples, "faces/obama.jpg", library)
    asyncio.run(index(make_config(library, data, mqtt__enabled="true", mqtt__host="127.0.0.1",
                                  mqtt__port=str(port))))
    cluster = by_path(data)["obama.jpg"]["faces"][0]["cluster"]
    # named with the command line, which stages person.named by the same rule
    named = shoebox("people", "name", cluster, "Barack Obama", "--library", str(library), "--data", str(data))
    assert named.stdout.startswith("created person")
    assert [r["id"] for r in outbox(data, "person.named")], "the command line staged no person.named"
    copy_sample(samples, "faces/obama2.jpg", library)

    # The broker is down: MQTT cannot deliver anything, so the tag job's event can only be in the
    # outbox, committed with the face it describes, when the daemon is killed.
    args = ("--tagging-enabled", "true", "--index-watch", "false")
    proc = serve(library, data, port, *args, log=tmp_path / "serve.log")
    try:
        staged = wait_until(lambda: outbox(data, "person.recognized"), 120,
                            what="person.recognized committed in the outbox")
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(staged) == 1
    event_id = staged[0]["id"]
    assert "Barack Obama" in staged[0]["data"]
    assert [r["id"] for r in outbox(data, "person.recognized")] == [event_id], "the kill lost the staged event"

    broker = Broker(tmp_path, port=port).start()
    ha = Listener(port, ["shoebox/+/events/#"])
    proc = serve(library, data, port, *args, log=tmp_path / "serve.log")
    try:
        ha.wait_for(lambda m: m.topic.endswith("/events/person.recognized"), 60, "person.recognized after the restart")
        # delivered and acknowledged: the outbox drops what every transport has delivered
        wait_until(lambda: not outbox(data, "person.recognized"), 30, what="the outbox to let go of the event")
        received = mqtt_events(ha, "person.recognized")
        assert {e["id"] for e in received} == {event_id}, "one event, the one staged before the kill"
        event = received[0]
        assert event["data"]["person"] == "Barack Obama" and event["data"]["photo"]
        assert event["data"]["photo"] == by_path(data)["obama2.jpg"]["id"]
        named_events = ha.wait_for(lambda m: m.topic.endswith("/events/person.named"), 30, "person.named")
        assert named_events[0].json()["data"] == {"person": "Barack Obama", "person_id": named_events[0].json()[
            "data"]["person_id"], "cluster": cluster, "created": True}
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ha.close()
        broker.stop()


async def test_archive_and_restore_raise_photo_archived_and_photo_updated(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        h = auth(await login(client, "ann"))
        uid = (await photo_ids(app))["Canon_40D.jpg"]
        async with events_of(app) as seen:
            assert (await client.post(f"/api/v1/photos/{uid}/archive", headers=h)).status == 200
            assert (await client.post(f"/api/v1/photos/{uid}/restore", headers=h)).status == 200
            # a PATCH that archives is the same change, with the same event
            r = await client.patch(f"/api/v1/photos/{uid}", json={"archived": True, "title": "Gone"}, headers=h)
            assert r.status == 200
        photo_events = [e for e in seen if e["type"].startswith("photo.")]
        assert photo_events == [
            {"type": "photo.archived", "data": {"photo": uid}},
            {"type": "photo.updated", "data": {"photo": uid, "changes": ["archived"], "archived": False}},
            {"type": "photo.archived", "data": {"photo": uid}},
            {"type": "photo.updated", "data": {"photo": uid, "changes": ["title"], "archived": True}},
        ]


async def test_pause_by_the_api_and_resume_by_mqtt_cmd_index(copy: tuple[Path, Path], samples: Path,
                                                            tmp_path: Path) -> None:
    library, data = copy
    broker = Broker(tmp_path).start()
    ha = Listener(broker.port, ["shoebox/#"])
    config = make_config(library, data, **settings(mqtt__enabled="true", mqtt__host="127.0.0.1",
                                                   mqtt__port=str(broker.port), mqtt__state_interval="1",
                                                   zeroconf__enabled="false"))
    try:
        async with api(config) as (app, client):
            assert app.events is not None and app.queue is not None
            await app.events.start_transports()
            await add_user(app, "ann", Role.ADMIN)
            h = auth(await login(client, "ann"))
            root = f"shoebox/{app.events.instance_id}"
            await wait_until_async(lambda: ha.snapshot(lambda m: m.topic == f"{root}/availability"
                                                       and m.payload == b"online"), 30, what="MQTT online")

            stopped = await (await client.post("/api/v1/index/stop", headers=h)).json()
            assert stopped["paused"] is True
            status = await (await client.get("/api/v1/status", headers=h)).json()
            assert status["paused"] is True
            # the MQTT state document shows the pause the API made
            await wait_until_async(lambda: [m for m in ha.snapshot(lambda m: m.topic == f"{root}/state")
                                            if m.json().get("paused") is True], 30, what="paused in the MQTT state")

            # a new photo arrives (the watcher's scan): queued, and not indexed while paused
            copy_sample(samples, "exif-samples/jpg/Fujifilm_FinePix_E500.jpg", library / "camera")
            report = await app.scan()
            assert report.queued == 1
            await app.queue.wait_idle()  # idle as far as a paused queue goes: the job must still be queued
            assert await app.db.scalar("SELECT count(*) FROM jobs WHERE kind = 'index'") == 1
            assert "Fujifilm_FinePix_E500.jpg" not in await photo_ids(app)
            progress = await (await client.get("/api/v1/index", headers=h)).json()
            assert progress["paused"] is True and progress["queued"]["index"] == 1

            # Home Assistant resumes it: the same queue runs again and the photo is indexed
            await asyncio.to_thread(ha.publish, f"{root}/cmd/index", "resume")
            await wait_until_async(lambda: not app.queue.paused, 30, what="the queue to resume")
            await wait_until_async(photo_ids_has(app, "Fujifilm_FinePix_E500.jpg"), 60, what="the photo indexed")
            progress = await (await client.get("/api/v1/index", headers=h)).json()
            assert progress["paused"] is False
            await wait_until_async(lambda: [e for e in mqtt_events(ha, "photo.added")
                                            if e["data"]["path"].endswith("Fujifilm_FinePix_E500.jpg")], 30,
                                   what="photo.added over MQTT")

            # pause by MQTT is seen by the API too; an unknown word is an error event, not a crash
            await asyncio.to_thread(ha.publish, f"{root}/cmd/index", "pause")
            await wait_until_async(lambda: app.queue.paused, 30, what="the pause by MQTT")
            assert (await (await client.get("/api/v1/index", headers=h)).json())["paused"] is True
            await asyncio.to_thread(ha.publish, f"{root}/cmd/index", "reboot")
            error = await wait_until_async(lambda: mqtt_events(ha, "error"), 30, what="an error event")
            assert "unknown cmd/index payload" in error[-1]["data"]["error"]

            # the command line sees the pause MQTT made, and changes the same state
            where = ("--library", str(library), "--data", str(data))
            out = await asyncio.to_thread(shoebox, "status", *where)
            assert "indexing  PAUSED since" in out.stdout
            out = await asyncio.to_thread(shoebox, "index", "--resume", *where)
            assert out.stdout.startswith("indexing resumed")
            await wait_until_async(lambda: not app.queue.paused, 30, what="the resume from the command line")
            assert (await (await client.get("/api/v1/index", headers=h)).json())["paused"] is False
            out = await asyncio.to_thread(shoebox, "index", "--pause", *where)
            assert out.stdout.startswith("indexing paused")
            await wait_until_async(lambda: app.queue.paused, 30, what="the pause from the command line")
            started = await (await client.post("/api/v1/index/start", json={}, headers=h)).json()
            assert started["resumed"] is True and not app.queue.paused
        # without a running daemon there is nothing to pause: every start indexes
        out = await asyncio.to_thread(shoebox, "index", "--pause", "--library", str(library), "--data", str(data),
                                      check=False)
        assert out.returncode == 1 and "nothing to pause" in out.stderr
    finally:
        ha.close()
        broker.stop()


def photo_ids_has(app: Any, name: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return name in await photo_ids(app)
    return check

"""MQTT as Home Assistant sees it: a real mosquitto, the real `shoebox serve`, a real MQTT client.

Discovery (retained, valid JSON, unique ids, one device), availability and the last will, the
events of photos that land in the library, commands, and nothing lost or doubled when the broker
goes away during indexing or the daemon restarts while the broker is away.
"""

from __future__ import annotations

import io
import json
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from PIL import Image

from daemon.library.thumbnails import ThumbSettings, thumb_path

from tests.conftest import copy_sample
from tests.waiting import wait_until
from tests.integration.test_events_helpers import (Broker, Listener, distinct_copies, events_of, serve,
                                                   stop)

# slow: each test runs a real mosquitto and a real shoebox serve
pytestmark = pytest.mark.slow

JOLLA = "exif-samples/jpg/mobile/jolla.jpg"
COMPONENTS = {"sensor", "binary_sensor", "event", "image", "button"}


def indexed_count(data: Path) -> int:
    try:
        with sqlite3.connect(f"file:{data / 'shoebox.db'}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM files WHERE state = 'indexed'").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.fixture
def broker(tmp_path: Path):  # type: ignore[no-untyped-def]
    b = Broker(tmp_path).start()
    yield b
    b.stop()


def instance_of(listener: Listener, timeout: float = 60) -> str:
    online = listener.wait_for(lambda m: m.topic.endswith("/availability") and m.payload == b"online",
                               timeout, "the daemon to come online")
    return online[-1].topic.split("/")[1]


def test_home_assistant_discovery_state_events_commands_and_last_will(
        broker: Broker, library: Path, tmp_path: Path, samples: Path) -> None:
    copy_sample(samples, "exif-samples/jpg/Canon_40D.jpg", library)
    ha = Listener(broker.port, ["#"])
    # no watcher and no periodic rescans: a photo added later is only found through a command
    proc = serve(library, tmp_path / "data", broker.port, "--index-watch", "false", log=tmp_path / "serve.log")
    try:
        instance = instance_of(ha)
        root = f"shoebox/{instance}"
        added = ha.wait_for(lambda m: m.topic == f"{root}/events/photo.added", 60, "photo.added of the first photo")
        event = added[0].json()
        assert set(event) == {"id", "type", "time", "data"}
        assert event["type"] == "photo.added" and event["data"]["path"] == "Canon_40D.jpg"
        assert len(event["id"]) == 26 and event["time"].endswith("Z")
        assert added[0].qos == 1
        indexed = ha.wait_for(lambda m: m.topic == f"{root}/events/photo.indexed", 30, "photo.indexed")[0].json()
        assert indexed["data"]["photo"] == event["data"]["photo"] and indexed["data"]["new"] is True
        assert indexed["id"] > event["id"], "event ids sort in the order the events happened"

        # The state document follows within a few seconds, and the latest photo as JPEG bytes.
        state = ha.wait_for(lambda m: m.topic == f"{root}/state" and m.json()["photos"] == 1, 30, "state")[-1].json()
        assert state["videos"] == 0 and state["queue"] == 0 and state["last_indexed"].endswith("Z")
        assert state["people"] == 0 and state["indexing"] in (True, False) and state["storage"] == "ok"
        image = ha.wait_for(lambda m: m.topic == f"{root}/latest/image", 30, "the latest photo")[-1]
        with sqlite3.connect(tmp_path / "data" / "shoebox.db") as conn:
            key = conn.execute("SELECT thumb_key FROM photos").fetchone()[0]
        assert image.payload == thumb_path(tmp_path / "data" / "thumbs", key, "fit_720", ThumbSettings()).read_bytes()
        assert Image.open(io.BytesIO(image.payload)).format == "JPEG"

        # A late subscriber (Home Assistant starting after Shoebox) gets discovery as retained messages.
        late = Listener(broker.port, ["homeassistant/#", f"{root}/availability", f"{root}/state"])
        configs = late.wait_for(lambda m: m.topic.startswith("homeassistant/"), 10, "retained discovery", count=11)
        assert all(m.retain for m in configs), "discovery must be retained"
        docs = {m.topic: m.json() for m in configs}
        assert {t.split("/")[1] for t in docs} == COMPONENTS
        unique = [d["unique_id"] for d in docs.values()]
        assert len(unique) == len(set(unique)) == 11
        for topic, d in docs.items():
            assert topic == f"homeassistant/{topic.split('/')[1]}/shoebox_{instance}/{topic.split('/')[3]}/config"
            assert d["device"]["identifiers"] == [f"shoebox_{instance}"] and d["device"]["manufacturer"] == "Shoebox"
            assert d["availability_topic"] == f"{root}/availability"
            # Home Assistant 2026.4 ignores object_id; default_entity_id makes the documented entity ids
            assert "object_id" not in d
            assert d["default_entity_id"] == f"{topic.split('/')[1]}.shoebox_{topic.split('/')[3]}"
        by_id = {d["unique_id"].removeprefix(f"shoebox_{instance}_"): d for d in docs.values()}
        assert by_id["last_indexed"]["device_class"] == "timestamp"
        assert by_id["indexing"]["device_class"] == "running"
        assert by_id["disk_full"]["device_class"] == "problem" and "storage" in by_id["disk_full"]["value_template"]
        assert by_id["new_photo"]["state_topic"] == f"{root}/events/photo.added"
        assert by_id["new_photo"]["event_types"] == ["added"]
        assert by_id["new_photo"]["default_entity_id"] == "event.shoebox_new_photo"
        assert by_id["person_recognized"]["default_entity_id"] == "event.shoebox_person_recognized"
        assert by_id["new_photo"]["qos"] == by_id["person_recognized"]["qos"] == 1
        assert by_id["person_recognized"]["state_topic"] == f"{root}/events/person.recognized"
        assert by_id["latest_photo"]["image_topic"] == f"{root}/latest/image"
        assert by_id["index"]["command_topic"] == f"{root}/cmd/index"
        avail = late.wait_for(lambda m: m.topic.endswith("/availability"), 5, "retained availability")[0]
        assert avail.retain and avail.payload == b"online"
        assert late.wait_for(lambda m: m.topic.endswith("/state"), 5, "retained state")[0].retain
        late.close()

        # Home Assistant restarts and says so: discovery is sent again.
        before = len(ha.snapshot(lambda m: m.topic.startswith("homeassistant/") and m.topic.endswith("/config")))
        ha.publish("homeassistant/status", "online")
        ha.wait_for(lambda m: m.topic.startswith("homeassistant/") and m.topic.endswith("/config"), 10,
                    "discovery again", count=before + 10)

        # A photo added now is not seen (no watcher) until home automation asks for a rescan.
        copy_sample(samples, "exif-samples/jpg/Nikon_D70.jpg", library)
        time.sleep(2.0)  # not a wait: time in which the photo must NOT be seen
        assert len(events_of(ha, "photo.added")) == 1
        ha.publish(f"{root}/cmd/rescan", "")
        ha.wait_for(lambda m: m.topic == f"{root}/events/photo.added" and b"Nikon_D70" in m.payload, 30,
                    "the rescan command to index the new photo")
        finished = ha.wait_for(lambda m: m.topic == f"{root}/events/index.finished", 30, "index.finished")
        assert finished[-1].json()["data"]["added"] == 1
        # An unknown command is answered with an error event, not a crash.
        ha.publish(f"{root}/cmd/reboot", "")
        err = ha.wait_for(lambda m: m.topic == f"{root}/events/error", 10, "an error event")[-1].json()
        assert "unknown command" in err["data"]["error"]
        assert proc.poll() is None

        # Killed without a word: the broker publishes the last will.
        ha.messages.clear()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        ha.wait_for(lambda m: m.topic == f"{root}/availability" and m.payload == b"offline", 30,
                    "the last will (offline)")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ha.close()


def _received_in_order_once(listener: Listener) -> list[dict]:
    """Each event once, in order, as a subscriber that de-duplicates by event id sees them.

    MQTT QoS 1 is at-least-once: a message whose acknowledgement was lost when the broker went
    down is sent again after it comes back, so a redelivery of the same event (same id, same
    body) is the protocol working, not a second event; the README says to de-duplicate by id.
    Anything else twice, or out of order, fails."""
    events = events_of(listener)
    first: dict[str, dict] = {}
    for e in events:
        if e["id"] in first:
            assert e == first[e["id"]], f"event {e['id']} arrived twice with different bodies"
        else:
            first[e["id"]] = e
    assert len(events) - len(first) <= 2, f"{len(events) - len(first)} events arrived twice"
    ids = list(first)
    assert ids == sorted(ids), "events arrived out of order"
    return list(first.values())


def test_broker_outage_during_indexing_loses_nothing(library: Path, tmp_path: Path, samples: Path) -> None:
    count = 30
    distinct_copies(samples / JOLLA, library, count)
    broker = Broker(tmp_path, persistence=True).start()
    ha = Listener(broker.port, ["shoebox/+/events/#"], client_id="ha-outage", persistent=True)
    proc = serve(library, tmp_path / "data", broker.port, "--index-watch", "false", log=tmp_path / "serve.log")
    try:
        ha.wait_for(lambda m: m.topic.endswith("/events/photo.indexed"), 60, "the first photo.indexed", count=3)
        broker.stop()
        down_at = indexed_count(tmp_path / "data")
        wait_until(lambda: indexed_count(tmp_path / "data") >= count, 120, interval=0.2,
                   what="indexing to go on while the broker is away")
        assert down_at < count, "the outage came too late to prove anything"
        broker.start()
        ha.wait_for(lambda m: m.topic.endswith("/events/index.finished"), 60, "index.finished after the outage")
        time.sleep(1.0)  # not a wait: anything doubled would arrive now (nothing may)
        events = _received_in_order_once(ha)
        types = [e["type"] for e in events]
        assert types.count("photo.added") == count and types.count("photo.indexed") == count
        assert types[0] == "index.started" and types[-1] == "index.finished"
        assert len({e["data"]["path"] for e in events if e["type"] == "photo.added"}) == count
    finally:
        stop(proc)
        ha.close()
        broker.stop()


def test_events_raised_while_broker_is_away_survive_a_daemon_restart(library: Path, tmp_path: Path,
                                                                      samples: Path) -> None:
    count = 20
    distinct_copies(samples / JOLLA, library, count)
    data = tmp_path / "data"
    broker = Broker(tmp_path, persistence=True).start()
    ha = Listener(broker.port, ["shoebox/+/events/#"], client_id="ha-restart", persistent=True)
    first = serve(library, data, broker.port, "--index-watch", "false", log=tmp_path / "serve1.log")
    try:
        ha.wait_for(lambda m: m.topic.endswith("/events/photo.indexed"), 60, "the first photo.indexed", count=2)
        broker.stop()
        wait_until(lambda: indexed_count(data) >= count, 120, interval=0.2,
                   what="indexing to go on while the broker is away")
        assert stop(first) == 0
        with sqlite3.connect(data / "shoebox.db") as conn:
            waiting = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        assert waiting > 0, "the undelivered events must be in the outbox when the daemon stops"

        broker.start()
        second = serve(library, data, broker.port, "--index-watch", "false", "--index-scan-on-start", "false",
                       log=tmp_path / "serve2.log")
        try:
            ha.wait_for(lambda m: m.topic.endswith("/events/index.finished"), 60, "index.finished after the restart")
            time.sleep(1.0)  # not a wait: anything doubled would arrive now (nothing may)
            events = _received_in_order_once(ha)
            types = [e["type"] for e in events]
            assert types.count("photo.added") == count and types.count("photo.indexed") == count
            with sqlite3.connect(data / "shoebox.db") as conn:
                assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0, "delivered events are pruned"
        finally:
            assert stop(second) == 0
    finally:
        if first.poll() is None:
            first.kill()
        ha.close()
        broker.stop()


def recorded_configs(data: Path) -> set[str]:
    """The discovery topics the daemon recorded as announced (what its next run clears if unwanted)."""
    with sqlite3.connect(f"file:{data / 'shoebox.db'}?mode=ro", uri=True, timeout=5) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'mqtt.discovery_topics'").fetchone()
    return set(json.loads(row[0])) if row else set()


def test_custom_birth_topic_and_discovery_off_clears_what_was_announced(
        broker: Broker, library: Path, tmp_path: Path) -> None:
    """Home Assistant with its own birth topic gets discovery again when it says `online` there;
    a restart with another instance id clears the old configs, and one with discovery off leaves no
    retained config behind (no orphan entities or device in Home Assistant)."""
    data = tmp_path / "data"
    ha = Listener(broker.port, ["#"])
    proc = serve(library, data, broker.port, "--index-watch", "false", "--mqtt-birth-topic", "ha/birth",
                 log=tmp_path / "serve1.log")
    try:
        instance = instance_of(ha)
        configs = ha.wait_for(lambda m: m.topic.endswith("/config") and m.payload, 30, "discovery", count=11)
        announced = {m.topic for m in configs}
        assert len(announced) == 11
        before = len(ha.snapshot(lambda m: m.topic.endswith("/config")))
        ha.publish("ha/birth", "online")
        ha.wait_for(lambda m: m.topic.endswith("/config"), 10, "discovery again after the custom birth message",
                    count=before + 11)
        wait_until(lambda: recorded_configs(data) == announced, 10)
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # Another instance id (a restored database, say): the old configs go, the new ones come.
    with sqlite3.connect(data / "shoebox.db") as conn:
        conn.execute("UPDATE meta SET value = 'a1b2c3d4e5f6' WHERE key = 'instance.id'")
    ha.messages.clear()
    proc = serve(library, data, broker.port, "--index-watch", "false", log=tmp_path / "serve2.log")
    try:
        renewed = ha.wait_for(lambda m: "/shoebox_a1b2c3d4e5f6/" in m.topic and m.payload, 60,
                              "discovery of the new instance id", count=11)
        cleared = ha.wait_for(lambda m: m.topic.endswith("/config") and m.payload == b"", 30,
                              "the old instance's configs cleared", count=11)
        assert {m.topic for m in cleared} == announced
        announced = {m.topic for m in renewed}
        wait_until(lambda: recorded_configs(data) == announced, 10)
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    instance = "a1b2c3d4e5f6"
    ha.messages.clear()
    proc = serve(library, data, broker.port, "--index-watch", "false", "--mqtt-discovery", "false",
                 log=tmp_path / "serve3.log")
    try:
        ha.wait_for(lambda m: m.topic == f"shoebox/{instance}/availability" and m.payload == b"online", 60,
                    "the daemon back online")
        cleared = ha.wait_for(lambda m: m.topic.endswith("/config") and m.payload == b"", 30,
                              "the announced configs cleared", count=11)
        assert {m.topic for m in cleared} == announced
        assert not ha.snapshot(lambda m: m.topic.endswith("/config") and m.payload), "discovery is off"
        # Home Assistant starting now finds no retained config: retained messages come on subscribe,
        # in the order of the subscriptions, so the availability arriving means the configs had their turn.
        late = Listener(broker.port, ["homeassistant/#", f"shoebox/{instance}/availability"])
        late.wait_for(lambda m: m.topic.endswith("/availability"), 10, "retained availability")
        assert not late.snapshot(lambda m: m.topic.startswith("homeassistant/")), "retained configs left behind"
        late.close()
        wait_until(lambda: recorded_configs(data) == set(), 10)
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ha.close()

"""The event bus on a real SQLite store: ids that sort like events, a bounded outbox that counts
what it drops, transports that progress on their own and resume where they stopped, signatures."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from pathlib import Path

import pytest

from daemon.events.bus import Event, EventBus, EventError, TransportStopped, UlidFactory, type_matches
from daemon.events.mqtt import Topics, discovery_messages
from daemon.events.webhooks import sign, verify
from daemon.store.db import Database
from tests.waiting import wait_until_async


class Recorder:
    """A transport that keeps what it is given; `gate` holds deliveries back until set, and
    `stop_after` makes it refuse (TransportStopped) after that many."""

    def __init__(self, name: str, *, gate: asyncio.Event | None = None, stop_after: int | None = None) -> None:
        self.name = name
        self.got: list[Event] = []
        self.gate = gate
        self.stop_after = stop_after

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def deliver(self, event: Event) -> None:
        if self.stop_after is not None and len(self.got) >= self.stop_after:
            raise TransportStopped("enough")
        if self.gate is not None:
            await self.gate.wait()
        self.got.append(event)


async def outbox_size(db: Database) -> int:
    return int(await db.scalar("SELECT count(*) FROM events"))


def test_ulids_are_unique_and_sort_in_creation_order() -> None:
    ids = UlidFactory()
    made = [ids.new() for _ in range(20_000)]  # many within one millisecond
    assert len(set(made)) == len(made)
    assert made == sorted(made)
    assert all(len(i) == 26 for i in made)


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"id":"01J","type":"photo.added"}'
    header = sign("s3cret-s3cret-s3cret", 1_700_000_000, body)
    expected = hmac.new(b"s3cret-s3cret-s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert verify("s3cret-s3cret-s3cret", header, body, now=1_700_000_100)
    assert not verify("s3cret-s3cret-s3cret", header, body, now=1_700_000_000 + 301), "a replay is refused"
    assert not verify("s3cret-s3cret-s3cret", header, body + b" ", now=1_700_000_000)
    assert not verify("s3cret-s3cret-s3cret", "garbage", body)


def test_type_patterns() -> None:
    assert type_matches([], "photo.added") and type_matches(["*"], "error")
    assert type_matches(["photo.*"], "photo.indexed") and not type_matches(["photo.*"], "person.recognized")
    assert type_matches(["person.recognized"], "person.recognized") and not type_matches(["photo.added"], "photo.indexed")


async def test_publish_refuses_bad_events_with_a_reason(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "s.db")
    bus = EventBus(db)
    await bus.start()
    try:
        with pytest.raises(EventError, match="invalid event type"):
            bus.publish("shoebox/#", {})
        with pytest.raises(EventError, match="not JSON"):
            bus.publish("photo.added", {"when": object()})
    finally:
        await bus.stop()
        await db.close()


async def test_transports_progress_independently_and_delivered_events_are_pruned(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "s.db")
    bus = EventBus(db)
    await bus.start()
    gate = asyncio.Event()
    fast, slow = Recorder("fast"), Recorder("slow", gate=gate)
    await bus.add_transport(fast, window=8)
    await bus.add_transport(slow)
    try:
        sent = [bus.publish("photo.added", {"n": i}) for i in range(50)]
        await wait_until_async(lambda: len(fast.got) == 50)
        assert [e.id for e in fast.got] == [e.id for e in sent], "in order, each once"
        assert slow.got == []
        await asyncio.sleep(0.6)  # not a wait: the cursors are saved meanwhile, and nothing the slow one needs may go
        assert await outbox_size(db) == 50, "the slow transport still needs them"
        gate.set()
        await wait_until_async(lambda: len(slow.got) == 50)
        assert [e.data["n"] for e in slow.got] == list(range(50))
        status = await bus.status()
        assert status["transports"]["fast"]["delivered"] == 50
    finally:
        await bus.stop()
    assert await outbox_size(db) == 0
    await db.close()


async def test_a_restarted_bus_resumes_each_transport_where_it_stopped(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "s.db")
    bus = EventBus(db, durable=["mqtt"])
    await bus.start()
    first = Recorder("mqtt", stop_after=5)
    await bus.add_transport(first)
    for i in range(20):
        bus.publish("photo.indexed", {"n": i})
    await wait_until_async(lambda: len(first.got) == 5)
    await bus.stop()
    assert await outbox_size(db) == 15

    bus = EventBus(db, durable=["mqtt"])
    await bus.start()
    second = Recorder("mqtt")
    await bus.add_transport(second)
    await wait_until_async(lambda: len(second.got) == 15)
    assert [e.data["n"] for e in second.got] == list(range(5, 20))
    await bus.stop()
    await db.close()


async def test_the_outbox_is_bounded_and_counts_what_it_dropped(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "s.db")
    bus = EventBus(db, outbox_max=100, durable=["mqtt"])  # configured, but the broker never comes
    await bus.start()
    for i in range(150):
        bus.publish("photo.added", {"n": i})
    await bus.flush()
    status = await bus.status()
    assert status["outbox"] == 100 and status["dropped"] == 50
    kept = await db.fetchall("SELECT data FROM events ORDER BY seq")
    assert kept[0]["data"] == '{"n": 50}', "the oldest are dropped, the newest kept"
    await bus.stop()
    await db.close()


async def test_events_from_worker_threads_arrive_in_the_outbox(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "s.db")
    bus = EventBus(db, durable=["mqtt"])
    await bus.start()
    await asyncio.gather(*(asyncio.to_thread(bus.publish, "face.detected", {"t": t}) for t in range(8)))
    await bus.flush()
    assert await outbox_size(db) == 8
    await bus.stop()
    await db.close()


def test_home_assistant_discovery_has_one_device_and_unique_ids() -> None:
    topics = Topics("shoebox", "abc123", "homeassistant")
    messages = discovery_messages(topics, "abc123", "1.0")
    unique = [config["unique_id"] for _, config in messages]
    assert len(unique) == len(set(unique))
    for topic, config in messages:
        component, node, object_id = topic.split("/")[1:4]
        assert topic == f"homeassistant/{component}/shoebox_abc123/{object_id}/config"
        assert config["device"]["identifiers"] == ["shoebox_abc123"]
        assert config["availability_topic"] == "shoebox/abc123/availability"
    events = {c["unique_id"]: c for t, c in messages if "/event/" in t}
    for config in events.values():
        # event.mqtt needs an event_type from event_types in the (templated) payload
        assert f'"event_type": "{config["event_types"][0]}"' in config["value_template"]


def test_default_zeroconf_setting_is_one_python_zeroconf_accepts() -> None:
    """`interfaces = "all"` (the default) must reach AsyncZeroconf as something it can bind to.
    zeroconf's own normaliser is asked (it only lists interfaces; no socket, no traffic)."""
    from zeroconf import IPVersion
    from zeroconf._utils.net import normalize_interface_choice

    from daemon.config import SCHEMA_BY_NAME
    from daemon.events.mdns import Announcer, parse_interfaces

    default = SCHEMA_BY_NAME["zeroconf.interfaces"].default
    announcer = Announcer(port=8420, instance_id="abc", version="0", interfaces=parse_interfaces(default))
    assert normalize_interface_choice(announcer.listen_on(), IPVersion.All)
    some = Announcer(port=8420, instance_id="abc", version="0", interfaces=parse_interfaces("127.0.0.1"))
    assert some.listen_on() == ["127.0.0.1"]

"""The event bus: one place where everything that happens in the library is announced, and one
dispatcher that hands each event to every transport (MQTT, webhooks, the live stream).

Why this shape (Frigate's): producers know nothing about who listens; a transport is one small
module implementing `Transport`. One rule for producers: a change stages its events inside the
write transaction that makes it (`Database.write_staged` hands the function a `stage`, which ends
in `EventBus.stage`), so a change and its events commit together; `announce` after the commit is
the one fan-out (live listeners, and a wake-up for every transport's pump). Events that describe no
change of data (index.started, storage.full, a failed command) are `publish`ed: a writer task
stores them in a transaction of their own and then announces them the same way.

Transports get every event exactly in the order it was stored, from the persistent outbox
(daemon.events.outbox): each keeps its own cursor, so MQTT and every webhook subscription progress
on their own and resume after a broker outage or a daemon restart. Delivery is at least once;
every event carries a unique, time-sortable id (a ULID) that receivers de-duplicate by, which makes
it exactly once as far as the receiver can tell. The outbox is bounded: the oldest undelivered events are dropped
first and counted (meta 'events.dropped', shown in the status).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterable, Protocol, runtime_checkable

from daemon.events.outbox import (Event, drop_cursor, ensure_cursor, events_after, event_time, instance_id,
                                  keep_only_cursors, newest_seq, outbox_status, set_cursor, store_events)
from daemon.store.db import Database


log = logging.getLogger(__name__)

# The event types Shoebox raises. Anything else is allowed too (a plugin's own), but these are
# the documented contract (README: Events).
PHOTO_ADDED = "photo.added"
PHOTO_INDEXED = "photo.indexed"
PHOTO_UPDATED = "photo.updated"
PHOTO_ARCHIVED = "photo.archived"
PHOTO_UPLOADED = "photo.uploaded"  # an upload was stored in the library (who uploaded it)
LABEL_CREATED = "label.created"
LABEL_UPDATED = "label.updated"  # renamed, hidden/shown, put on or taken off a photo by a user
FACE_DETECTED = "face.detected"
PERSON_RECOGNIZED = "person.recognized"
PERSON_NAMED = "person.named"  # a person was named (a cluster named, or renamed)
PERSON_MERGED = "person.merged"
ALBUM_CREATED = "album.created"
ALBUM_UPDATED = "album.updated"
ALBUM_DELETED = "album.deleted"
SHARE_CREATED = "share.created"
SHARE_VIEWED = "share.viewed"  # a guest opened a share link
INDEX_STARTED = "index.started"
INDEX_FINISHED = "index.finished"
IMPORT_FINISHED = "import.finished"
LIBRARY_OFFLINE = "library.offline"
LIBRARY_ONLINE = "library.online"
STORAGE_FULL = "storage.full"  # a disk Shoebox writes to is full: indexing paused (daemon.system.diskspace)
STORAGE_OK = "storage.ok"  # space is back: indexing resumed
ERROR = "error"
WEBHOOK_DISABLED = "webhook.disabled"

EVENT_TYPES = (
    PHOTO_ADDED, PHOTO_INDEXED, PHOTO_UPDATED, PHOTO_ARCHIVED, PHOTO_UPLOADED, LABEL_CREATED, LABEL_UPDATED,
    FACE_DETECTED, PERSON_RECOGNIZED, PERSON_NAMED, PERSON_MERGED, ALBUM_CREATED, ALBUM_UPDATED, ALBUM_DELETED,
    SHARE_CREATED, SHARE_VIEWED, INDEX_STARTED, INDEX_FINISHED, IMPORT_FINISHED,
    LIBRARY_OFFLINE, LIBRARY_ONLINE, STORAGE_FULL, STORAGE_OK, ERROR, WEBHOOK_DISABLED,
)

# Events waiting in memory for the outbox writer. Far more than a burst of indexing produces
# between two writes (the writer takes all of them per transaction); beyond it events are dropped
# and counted rather than growing memory without bound on a 2 GB Pi.
PENDING_MAX = 20_000
WRITE_BATCH = 500
OUTSIDE_POLL_S = 5.0  # how often an idle transport looks for events other processes staged
LIVE_QUEUE = 1000


class EventError(Exception):
    """An event that cannot be published: bad type or data that is not JSON."""


class TransportStopped(Exception):
    """Raised by a transport's deliver() when it will deliver nothing more (e.g. a webhook
    subscription that was disabled); its pump ends without moving the cursor."""


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class UlidFactory:
    """Monotonic ULIDs: 48-bit milliseconds + 80 bits, Crockford base32, 26 characters.

    Lexicographic order is creation order, also within one millisecond (the random part is
    incremented), so ids sort like the events. Thread-safe: producers may be worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_rand = 0

    def new(self) -> str:
        with self._lock:
            ms = int(time.time() * 1000)
            if ms <= self._last_ms:
                ms = self._last_ms
                self._last_rand += 1
            else:
                self._last_rand = int.from_bytes(os.urandom(10), "big") >> 1  # room to increment
            self._last_ms = ms
            value = (ms << 80) | (self._last_rand & ((1 << 80) - 1))
        chars = []
        for _ in range(26):
            chars.append(_CROCKFORD[value & 31])
            value >>= 5
        return "".join(reversed(chars))


@runtime_checkable
class Transport(Protocol):
    """A way out for events. `deliver` returns once the receiver has the event (MQTT PUBACK,
    HTTP 2xx); it may take as long as the receiver is away. A durable transport's cursor only
    moves past an event once deliver() returned for it."""

    name: str

    async def start(self) -> None: ...

    async def deliver(self, event: Event) -> None: ...

    async def stop(self) -> None: ...


def accepts(transport: Any, event: Event) -> bool:
    check = getattr(transport, "accepts", None)
    return True if check is None else bool(check(event))


def type_matches(patterns: Iterable[str], event_type: str) -> bool:
    """`photo.added` matches "photo.added", "photo.*" and "*"; no patterns means every type."""
    patterns = list(patterns)
    if not patterns:
        return True
    for p in patterns:
        if p == "*" or p == event_type or (p.endswith(".*") and event_type.startswith(p[:-1])):
            return True
    return False


# -- the bus ---------------------------------------------------------------------------------------


@dataclass
class _Pump:
    transport: Any
    window: int
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    cursor: int = 0
    delivered: int = 0
    last_error: str | None = None


class EventBus:
    """Owned by the App, which makes it the database's outbox (`stage`/`announce`, used by
    Database.write_staged). `publish()` from anywhere for what changes no data; `add_transport()`
    to fan out; `stream()` for live listeners (the API's WebSocket/SSE)."""

    def __init__(self, db: Database, *, outbox_max: int = 10_000, durable: Iterable[str] = ()) -> None:
        self.db = db
        self.outbox_max = outbox_max
        self.durable_names = set(durable)  # configured durable transports (their cursors hold events)
        self.ids = UlidFactory()
        self._pending: deque[Event] = deque()
        self._wake_writer = asyncio.Event()
        self._flushed = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pumps: dict[str, _Pump] = {}
        self._live: set[asyncio.Queue[Event]] = set()
        self.dropped_memory = 0
        self.published = 0
        self._unstored = 0  # published, not yet in the outbox (popped batches included)
        self.instance_id = ""
        self._stopping = False

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        names = sorted(self.durable_names)

        def setup(conn: sqlite3.Connection) -> str:
            keep_only_cursors(conn, names)
            for name in names:
                ensure_cursor(conn, name)
            return instance_id(conn)

        self.instance_id = await self.db.write(setup)
        self._writer = asyncio.create_task(self._write_forever(), name="events-outbox")

    # -- publishing -----------------------------------------------------------------------------------

    def publish(self, type: str, data: dict[str, Any] | None = None) -> Event:
        """Announce an event that describes no change of the library's data (a scan started, a disk
        is full, a command failed): it goes into the outbox in a transaction of its own. A change
        stages its events in the transaction that makes it instead (Database.write_staged).
        Never blocks and never raises for a full queue (it counts a drop); safe from worker
        threads. Raises EventError for a bad type or data that is not JSON."""
        event = self._make(type, data)
        loop = self._loop
        if loop is None:
            raise EventError("the event bus is not started")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._enqueue(event)
        else:
            loop.call_soon_threadsafe(self._enqueue, event)
        return event

    def _make(self, type: str, data: dict[str, Any] | None) -> Event:
        if not isinstance(type, str) or not type or len(type) > 64 or "/" in type or "+" in type or "#" in type:
            raise EventError(f"invalid event type {type!r}: a short name like 'photo.added' (no / + #)")
        data = dict(data or {})
        try:
            json.dumps(data)
        except (TypeError, ValueError) as exc:
            raise EventError(f"event {type} data is not JSON-serialisable: {exc}") from None
        return Event(id=self.ids.new(), type=type, time=event_time(), data=data)

    def stage(self, conn: sqlite3.Connection, type: str, data: dict[str, Any]) -> Event:
        """Write an event into the outbox inside the caller's write transaction, so it commits
        (or is lost) together with the change it describes: a kill -9 between the two cannot
        lose it. Runs in the writer thread (Database.write_staged calls it and, after the commit,
        `announce`)."""
        event = self._make(type, data)
        if self.durable_names:
            store_events(conn, [event], self.outbox_max)
        return event

    def announce(self, events: list[Event]) -> None:
        """After the commit of stored events: hand them to live listeners and wake the pumps,
        which deliver them from the outbox. The one fan-out every event goes through."""
        if not events:
            return
        self.published += len(events)
        for event in events:
            for q in list(self._live):
                if q.full():
                    q.get_nowait()  # a slow live listener loses the oldest, not the daemon
                q.put_nowait(event)
        for pump in self._pumps.values():
            pump.wake.set()

    def _enqueue(self, event: Event) -> None:
        if len(self._pending) >= PENDING_MAX:
            self.dropped_memory += 1
            return
        self._pending.append(event)
        self._unstored += 1
        self._flushed.clear()
        self._wake_writer.set()

    async def flush(self) -> None:
        """Wait until every event published so far is in the outbox (and handed to live streams)."""
        await asyncio.sleep(0)  # let call_soon_threadsafe publications land
        while self._unstored and self._writer is not None and not self._writer.done():
            await self._flushed.wait()

    async def _write_forever(self) -> None:
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            while self._pending:
                batch = [self._pending.popleft() for _ in range(min(WRITE_BATCH, len(self._pending)))]
                if self.durable_names:
                    try:
                        await self.db.write(lambda c: store_events(c, batch, self.outbox_max))
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # a full disk must not stop the daemon
                        # lost for durable transports, but live listeners (the app) still hear them
                        # (announce wakes the pumps too, which find nothing new): storage.full
                        # itself is raised exactly when the outbox cannot grow
                        log.error("could not store %d events in the outbox: %s: %s", len(batch),
                                  type(exc).__name__, exc)
                        self.dropped_memory += len(batch)
                self.announce(batch)
                self._unstored -= len(batch)
            self._flushed.set()

    # -- transports -----------------------------------------------------------------------------------

    async def add_transport(self, transport: Any, *, window: int = 1) -> None:
        """Start a transport and its pump, which delivers from the outbox with the transport's own
        cursor (`window` deliveries may be in flight at once, still started in order)."""
        name = transport.name
        if name in self._pumps:
            raise EventError(f"transport {name} is already running")
        pump = _Pump(transport, max(1, window))
        self.durable_names.add(name)
        pump.cursor = await self.db.write(lambda c: ensure_cursor(c, name))
        await transport.start()
        self._pumps[name] = pump
        pump.task = asyncio.create_task(self._pump(pump), name=f"events-{name}")

    async def remove_transport(self, name: str, *, forget: bool = False) -> None:
        pump = self._pumps.pop(name, None)
        if pump is not None:
            if pump.task is not None:
                pump.task.cancel()
                await asyncio.gather(pump.task, return_exceptions=True)
            await pump.transport.stop()
        if forget:
            self.durable_names.discard(name)
            await self.db.write(lambda c: drop_cursor(c, name))

    async def _pump(self, pump: _Pump) -> None:
        name = pump.transport.name
        in_flight: deque[tuple[int, asyncio.Task[None]]] = deque()
        saved = pump.cursor
        last_save = time.monotonic()

        async def settle_head() -> None:
            seq, task = in_flight[0]
            await task  # TransportStopped or a bug propagates: the pump ends, the cursor stays
            in_flight.popleft()
            pump.cursor = seq
            pump.delivered += 1

        async def save() -> None:
            nonlocal saved, last_save
            if pump.cursor != saved:
                seq = pump.cursor
                await self.db.write(lambda c: set_cursor(c, name, seq))
                saved = seq
            last_save = time.monotonic()

        try:
            while True:
                pump.wake.clear()
                after = in_flight[-1][0] if in_flight else pump.cursor
                batch = await self.db.read(lambda c: events_after(c, after))
                if not batch:
                    while in_flight:
                        await settle_head()
                    await save()
                    # told by announce; and now and then unasked, for events another process
                    # staged into the outbox (`shoebox people`, daemon.events.outbox.stage_beside)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(pump.wake.wait(), OUTSIDE_POLL_S)
                    continue
                for ev in batch:
                    if not accepts(pump.transport, ev):
                        if not in_flight:
                            pump.cursor = ev.seq
                        else:  # keep order: mark as done behind the ones in flight
                            in_flight.append((ev.seq, asyncio.ensure_future(asyncio.sleep(0))))
                        continue
                    in_flight.append((ev.seq, asyncio.ensure_future(pump.transport.deliver(ev))))
                    while len(in_flight) >= pump.window:
                        await settle_head()
                    if time.monotonic() - last_save > 0.5:
                        await save()
                if time.monotonic() - last_save > 0.5:
                    await save()
        except asyncio.CancelledError:
            for _, task in in_flight:
                task.cancel()
            raise
        except TransportStopped as exc:
            pump.last_error = str(exc)
            log.info("transport %s stopped: %s", name, exc)
        except Exception as exc:
            pump.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("transport %s failed; its events stay in the outbox", name)
        finally:
            for _, task in in_flight:
                task.cancel()
            if pump.cursor != saved:
                seq = pump.cursor
                try:
                    await asyncio.shield(self.db.write(lambda c: set_cursor(c, name, seq)))
                except Exception:  # the database may be closing; the events will be sent again
                    pass

    # -- live stream ----------------------------------------------------------------------------------

    async def stream(self) -> AsyncIterator[Event]:
        """Every event from now on, as it is published (for WebSocket/SSE). A listener that falls
        more than LIVE_QUEUE events behind loses the oldest."""
        queue: asyncio.Queue[Event] = asyncio.Queue(LIVE_QUEUE)
        self._live.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._live.discard(queue)

    # -- status and stop ------------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        info = await self.db.read(outbox_status)
        info["dropped"] += self.dropped_memory
        info["published"] = self.published
        transports = {}
        for name in sorted(set(info["cursors"]) | set(self._pumps)):
            pump = self._pumps.get(name)
            entry: dict[str, Any] = {"running": pump is not None and (pump.task is None or not pump.task.done()),
                                     "pending": max(0, info["last_seq"] - info["cursors"].get(name, info["last_seq"]))}
            if pump is not None:
                entry["delivered"] = pump.delivered
                entry["last_error"] = pump.last_error
                extra = getattr(pump.transport, "status", None)
                if callable(extra):
                    entry.update(extra())
            transports[name] = entry
        info["transports"] = transports
        del info["cursors"]
        return info

    async def stop(self, timeout: float = 5.0) -> None:
        """Store what is pending, let durable transports finish what is in flight, then stop them."""
        if self._writer is not None:
            try:
                await asyncio.wait_for(self.flush(), timeout)
            except asyncio.TimeoutError:
                log.warning("events: %d events not stored at shutdown", len(self._pending))
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
        # Give connected transports a moment to finish what is in flight, so a restart does not
        # send those events a second time (receivers would drop them by id, but why make them).
        deadline = time.monotonic() + timeout
        if not self._pumps:
            self._loop = None
            return
        top = await self.db.read(newest_seq)
        for pump in self._pumps.values():
            while (pump.task is not None and not pump.task.done() and pump.cursor < top
                   and getattr(pump.transport, "connected", True) and time.monotonic() < deadline):
                await asyncio.sleep(0.05)
        for name in list(self._pumps):
            await self.remove_transport(name)
        self._loop = None

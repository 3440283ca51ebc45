"""The events room as the App sees it: the bus, the events raised by indexing and scanning, and
the transports (MQTT, webhooks) and zeroconf announcer that `shoebox serve` adds.

A change raises its events by staging them in its own write transaction
(`app.db.write_staged(lambda conn, stage: ...)`); `app.events.publish(type, data)` is for what
changes no data (a failed command, a full disk). See daemon.events.bus for the types and README
for their data.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from typing import TYPE_CHECKING, Any, Callable

from daemon import __version__
from daemon.events import bus as ev
from daemon.events.bus import Event, EventBus
from daemon.library.indexer import StoreOutcome
from daemon.library.scanner import ScanReport
from daemon.library.thumbnails import ThumbSettings, thumb_path
from daemon.store.db import Stage
from daemon.store.status import library_status

if TYPE_CHECKING:  # pragma: no cover
    from daemon.app import App
    from daemon.events.mdns import Announcer
    from daemon.events.mqtt import MqttTransport
    from daemon.events.webhooks import WebhookManager

log = logging.getLogger(__name__)

# What MQTT `cmd/index` understands: empty, start or press (Home Assistant's "Index now" button)
# resume and scan, resume as well; pause pauses.
INDEX_WORDS = ("", "start", "press", "resume", "pause")

PHOTO_QUERY = (
    "SELECT f.path_text, p.uid, p.type, p.taken_at, p.width, p.height, p.city, p.country"
    " FROM files f LEFT JOIN photos p ON p.id = ? WHERE f.id = ?")


class IndexEvents:
    """Turns what the indexer stored and what the scanner found into events.

    A photo's events are staged in the indexer's store transaction (`in_transaction`); the scan's
    in the transaction that records the library's state. Only `index.finished`, raised when the
    queue runs empty, describes no change and is published on its own."""

    def __init__(self, app: "App", bus: EventBus) -> None:
        self.app = app
        self.bus = bus
        self.running = False  # an index run (index.started sent, index.finished not yet)
        self.counts: dict[str, int] = {}
        self.started_at = 0.0
        self._waiter: asyncio.Task[None] | None = None

    def in_transaction(self, conn: sqlite3.Connection, o: StoreOutcome, stage: Stage) -> None:
        """Indexer hook, inside its store transaction (writer thread): stage the photo's events in
        the outbox so they commit with the photo; a kill -9 cannot separate the two."""
        row = conn.execute(PHOTO_QUERY, (o.photo_id, o.file_id)).fetchone()
        path = row["path_text"] if row else None
        if o.error is not None:
            stage(ev.ERROR, {"kind": "index", "path": path, "error": o.error})
            return
        if o.duplicate or row is None or row["uid"] is None:
            return
        photo = {"photo": row["uid"], "path": path, "type": row["type"], "taken_at": row["taken_at"],
                 "width": row["width"], "height": row["height"], "city": row["city"], "country": row["country"]}
        if o.created:
            stage(ev.PHOTO_ADDED, photo)
            stage(ev.PHOTO_INDEXED, {**photo, "new": True})
        else:
            stage(ev.PHOTO_INDEXED, {**photo, "new": False})
            stage(ev.PHOTO_UPDATED, {**photo, "moved": o.moved})

    def on_stored(self, o: StoreOutcome) -> None:
        """App listener, after the commit: count for index.finished."""
        key = ("errors" if o.error is not None else "duplicates" if o.duplicate
               else "indexed" if o.photo_id is not None else None)
        if key is not None:
            self.counts[key] = self.counts.get(key, 0) + 1
        if key == "indexed":
            added = "added" if o.created else "updated"
            self.counts[added] = self.counts.get(added, 0) + 1

    async def on_scan(self, report: ScanReport) -> None:
        """Called by App.scan after every scan: library offline/online, and the start of a run,
        staged in the transaction that records the library's state."""
        db = self.app.db
        assert db is not None
        state = "offline" if report.status == "skipped" else "online" if report.status == "done" else None
        starts = bool(report.queued) and not self.running
        if state is None and not starts:
            return
        library = str(self.app.library)

        def record(conn: sqlite3.Connection, stage: Stage) -> None:
            if state is not None:
                row = conn.execute("SELECT value FROM meta WHERE key = 'events.library'").fetchone()
                before = row[0] if row else None
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('events.library', ?)", (state,))
                if state == "offline" and before != "offline":
                    stage(ev.LIBRARY_OFFLINE, {"library": library, "reason": report.reason})
                elif state == "online" and before == "offline":
                    stage(ev.LIBRARY_ONLINE, {"library": library, "files_back": report.online})
            if starts:
                stage(ev.INDEX_STARTED, {"queued": report.queued, "added": report.added, "changed": report.changed})

        if starts:
            self.running = True
            self.counts = {"indexed": 0, "added": 0, "updated": 0, "errors": 0, "duplicates": 0}
            self.started_at = time.monotonic()
        await db.write_staged(record)
        if starts:
            self._waiter = asyncio.create_task(self._wait_for_idle(), name="events-index-idle")

    async def _wait_for_idle(self) -> None:
        assert self.app.queue is not None
        await self.app.queue.wait_idle()
        self.running = False
        self.bus.publish(ev.INDEX_FINISHED, {**self.counts, "seconds": round(time.monotonic() - self.started_at, 1)})

    async def stop(self) -> None:
        if self._waiter is not None:
            self._waiter.cancel()
            await asyncio.gather(self._waiter, return_exceptions=True)


class EventService:
    """Owned by the App as `app.events`."""

    def __init__(self, app: "App") -> None:
        self.app = app
        cfg = app.config
        assert app.db is not None
        self.bus = EventBus(app.db, outbox_max=cfg["events.outbox_max"])
        self.index = IndexEvents(app, self.bus)
        self.mqtt: MqttTransport | None = None
        self.webhooks: WebhookManager | None = None
        self.announcer: Announcer | None = None
        self._unsubscribe: Callable[[], None] = lambda: None  # from the indexer's news, on stop

    @property
    def instance_id(self) -> str:
        return self.bus.instance_id

    def publish(self, type: str, data: dict[str, Any] | None = None) -> Event:
        """Announce an event (see daemon.events.bus for the types). Never blocks."""
        return self.bus.publish(type, data)

    async def start(self) -> None:
        """Bus and index events: for `serve` and `index` alike, so events raised by a one-off
        `shoebox index` wait in the outbox for the next `serve` to deliver them."""
        from daemon.events.webhooks import enabled_transport_names

        db = self.app.db
        assert db is not None
        names = await db.read(enabled_transport_names)
        if self.app.config["mqtt.enabled"]:
            names.append("mqtt")
        self.bus.durable_names = set(names)
        await self.bus.start()
        self._unsubscribe = self.app.stored.subscribe(self.index.on_stored)
        assert self.app.indexer is not None
        self.app.indexer.tx_hooks.append(self.index.in_transaction)

    async def start_transports(self) -> None:
        """MQTT and webhooks (`shoebox serve` only)."""
        from daemon.events.mqtt import MqttSettings, MqttTransport, load_announced, record_announced
        from daemon.events.webhooks import WebhookManager, WebhookSettings

        cfg = self.app.config
        db = self.app.db
        assert db is not None
        if cfg["mqtt.enabled"]:
            fmt = cfg["thumbnails.format"]
            self.mqtt = MqttTransport(
                MqttSettings.from_section(cfg.section("mqtt")), instance_id=self.instance_id, version=__version__,
                state=self.state, image=self.latest_image, command=self.command,
                image_content_type="image/webp" if fmt == "webp" else "image/jpeg",
                load_announced=lambda: db.read(load_announced),
                save_announced=lambda topics: db.write(lambda conn: record_announced(conn, topics)))
            # 64 in flight: one broker round trip per event would cap delivery at a few hundred a second
            await self.bus.add_transport(self.mqtt, window=64)
        self.webhooks = WebhookManager(db, self.bus, WebhookSettings.from_section(cfg.section("webhooks")),
                                       user_agent=f"Shoebox/{__version__}")
        await self.webhooks.start()

    async def start_announcer(self, port: int, thumbnail_port: int | None = None) -> None:
        """zeroconf, once the HTTP server listens on `port` (and the thumbnail server on thumbnail_port)."""
        from daemon.events.mdns import Announcer, parse_interfaces

        cfg = self.app.config
        if not cfg["zeroconf.enabled"]:
            return
        self.announcer = Announcer(port=port, instance_id=self.instance_id, version=__version__,
                                   name=cfg["zeroconf.name"], interfaces=parse_interfaces(cfg["zeroconf.interfaces"]),
                                   thumbnail_port=thumbnail_port, https=cfg["server.https"])
        try:
            await self.announcer.start()
        except OSError as exc:  # no multicast-capable interface: serve anyway, say why
            log.warning("zeroconf: cannot announce Shoebox on the network: %s", exc)
            await self.announcer.stop()
            self.announcer = None

    # -- what MQTT asks for ---------------------------------------------------------------------------

    async def state(self) -> dict[str, Any]:
        """The retained MQTT state document (README: MQTT state)."""
        app = self.app
        assert app.db is not None
        status = await library_status(app.db, error_limit=0)

        def extra(conn: sqlite3.Connection) -> tuple[int, str | None]:
            people = conn.execute("SELECT count(*) FROM people WHERE hidden = 0").fetchone()[0]
            latest = conn.execute("SELECT uid FROM photos WHERE primary_file_id IS NOT NULL AND thumb_key IS NOT NULL"
                                  " ORDER BY added_at DESC, id DESC LIMIT 1").fetchone()
            return people, latest[0] if latest else None

        people, latest = await app.db.read(extra)
        indexing = bool(app.queue and app.queue.in_flight) or bool(app.scanner and app.scanner.running) \
            or self.index.running
        return {"photos": status["photos"]["total"], "videos": status["photos"]["videos"], "people": people,
                "queue": status["queue"]["total"], "last_indexed": status["last_indexed"], "indexing": indexing,
                "offline": status["photos"]["offline"], "errors": status["files"]["errors"],
                "latest_photo": latest, "paused": bool(app.queue and app.queue.paused),
                # "full" while indexing waits for disk space (storage.full / storage.ok events)
                "storage": "full" if app.storage is not None and app.storage.paused else "ok"}

    async def latest_image(self, photo_uid: str) -> bytes | None:
        """The photo's fit_720 thumbnail bytes, or None if it has none (yet)."""
        app = self.app
        assert app.db is not None
        key = await app.db.scalar("SELECT thumb_key FROM photos WHERE uid = ?", (photo_uid,))
        if not key:
            return None
        cfg = app.config
        path = thumb_path(app.thumbs, key, "fit_720",
                          ThumbSettings(format=cfg["thumbnails.format"], quality=cfg["thumbnails.quality"]))
        try:
            return await asyncio.to_thread(path.read_bytes)
        except OSError:
            return None

    async def command(self, name: str, payload: bytes) -> None:
        """A command from home automation (MQTT `<base>/<id>/cmd/<name>`)."""
        app = self.app
        log.info("command %s received", name)
        if name == "index":
            word = payload.decode(errors="replace").strip().lower()
            if word not in INDEX_WORDS:
                self.publish(ev.ERROR, {"kind": "command", "command": name,
                                        "error": f"unknown cmd/index payload {word!r}; known: "
                                                 "empty or start, press, pause, resume"})
                return
            assert app.queue is not None
            if word == "pause":
                await app.queue.pause_indexing()  # the same pause as POST /api/v1/index/stop
                return
            await app.queue.resume_indexing()  # as POST /api/v1/index/start: resume, then look for news
        if name in ("index", "rescan"):
            report = await app.scan()
            if report.status != "done":
                self.publish(ev.ERROR, {"kind": "command", "command": name, "error": report.reason})
            return
        if name == "import":
            run_import = getattr(app, "run_import", None)
            if run_import is None:
                self.publish(ev.ERROR, {"kind": "command", "command": name,
                                        "error": "import is not available in this version"})
                return
            await run_import(payload.decode(errors="replace").strip() or None)
            return
        self.publish(ev.ERROR, {"kind": "command", "command": name,
                                "error": f"unknown command {name!r}; known: index, import, rescan"})

    # -- status and stop ------------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        info = await self.bus.status()
        info["instance_id"] = self.instance_id
        if self.announcer is not None:
            info["zeroconf"] = self.announcer.status()
        return info

    async def stop(self) -> None:
        if self.announcer is not None:
            await self.announcer.stop()
            self.announcer = None
        self._unsubscribe()
        await self.index.stop()
        await self.bus.stop()
        if self.webhooks is not None:
            await self.webhooks.stop()
            self.webhooks = None
        self.mqtt = None

"""The App object: owns the store, the pool, the job queue and the services, and starts and stops
them in stages.

Everything is wired here, explicitly: a view or a service gets the App (or the piece it needs)
handed to it; there are no module globals to find things through. Start-up order is the
dependency order; shutdown is the reverse with a timeout per stage: stop taking work → drain
what is in flight → final writes → close.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

from PIL import Image

from daemon import __version__
from daemon.auth.service import AuthService, AuthSettings
from daemon.backup.make import pre_migration_backup, schema_version
from daemon.backup.schedule import BackupScheduler, BackupSettings
from daemon.config import Config
from daemon.events.service import EventService
from daemon.jobs.pool import WorkerPool
from daemon.jobs.queue import JobQueue
from daemon.library.decode import DecodeLimits
from daemon.library.gate import Gate
from daemon.library.import_runs import ImportReport, ImportRuns
from daemon.library.importer import ImportRefused
from daemon.library.indexer import Indexer, StoreOutcome
from daemon.library.scanner import Scanner, ScanReport
from daemon.library.thumbnails import ThumbSettings
from daemon.library.watcher import LibraryWatcher
from daemon.listeners import Listeners
from daemon.places.geonames import build_places_db
from daemon.places.index import PlaceIndex
from daemon.store.db import Database, migrations
from daemon.system import datalock
from daemon.system.notify import Notifier
from daemon.system.permissions import private_dir
from daemon.store.status import library_status
from daemon.system.diskspace import DiskSpace, StorageFull, Volume, check_data_dir, free_bytes, is_no_space
from daemon.system.durable import sweep_temp_files
from daemon.vision.tagger import Tagger, TaggingSettings, TagOutcome

log = logging.getLogger(__name__)


class App:
    def __init__(self, config: Config, *, notifier: Notifier | None = None) -> None:
        self.config = config
        # systemd's ear (`shoebox serve` under a unit): slow start steps ask it for more time
        self.notifier = notifier or Notifier()
        self.data: Path = config.data
        self.library: Path = config.library
        self.db_path = self.data / "shoebox.db"
        self.thumbs = self.data / "thumbs"
        # every library file is opened through this gate: to index it, read a sidecar, serve it
        self.gate = Gate(self.library, allowed=config["index.allowed_link_targets"], protected=(self.data,),
                         scratch=self.data / "pins")
        self.db: Database | None = None
        self.pool: WorkerPool | None = None
        self.queue: JobQueue | None = None
        self.scanner: Scanner | None = None
        self.indexer: Indexer | None = None
        self.places: PlaceIndex | None = None
        self.watcher: LibraryWatcher | None = None
        self.auth: AuthService | None = None  # logins, sessions, app tokens: daemon.auth
        self.tagger: Tagger | None = None
        self.events: EventService | None = None  # app.events.publish(type, data): daemon.events
        self.imports: ImportRuns | None = None  # server-side imports: daemon.library.import_runs
        self.storage: DiskSpace | None = None  # free space; pauses indexing when full: daemon.system.diskspace
        self.backups: BackupScheduler | None = None  # [backup] schedule while serving: daemon.backup.schedule
        self.started_at = time.time()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock_fd: int | None = None
        self.outcomes: list[StoreOutcome] = []  # recent store outcomes (index progress)
        self.stored: Listeners[StoreOutcome] = Listeners("stored")  # a file indexed: progress, events
        self.tagged: Listeners[TagOutcome] = Listeners("tagged")  # a photo tagged

    # -- staged start ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every part in dependency order; if one fails, stop what was started and re-raise,
        so a failed start never leaves threads behind that keep the process alive."""
        try:
            await self._start()
        except BaseException as exc:
            await self.stop(timeout=5.0)
            if is_no_space(exc) and not isinstance(exc, StorageFull):  # e.g. SQLite could not grow its files
                raise StorageFull("data", self.data, free_bytes(self.data), self.config["index.min_free_mib"] << 20,
                                  f"{type(exc).__name__}: {exc}") from exc
            raise

    async def _start(self) -> None:
        cfg = self.config
        check_data_dir(self.data)  # DataDirUnusable (exit 6): not a folder, read-only, no permission
        self.storage = DiskSpace([Volume("data", self.data), Volume("thumbnails", self.thumbs)],
                                 cfg["index.min_free_mib"], state_file=self.data / "shoebox.state",
                                 on_change=self._storage_changed)
        self.storage.check_start()  # StorageFull (exit 5) before anything is written
        private_dir(self.data)  # 0700: database, secrets and keys are for the service user only
        self.thumbs.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        # Pillow's own bomb limit is process-wide; make it agree with ours (checked per file from
        # the header in daemon.library.decode) instead of refusing 180-200 MP photos on its own.
        Image.MAX_IMAGE_PIXELS = cfg["index.max_pixels"]
        await self._backup_before_migrations()
        self.notifier.extend_timeout(120, "checking the database")
        self.db = await Database.open(self.db_path, readers=3, query_seconds=cfg["search.max_seconds"],
                                      on_migration=lambda name: self.notifier.extend_timeout(
                                          600, f"updating the database: {name}"))
        # Accounts and tokens: the signing secret is made here at first start (data/secret.key, 0600).
        self.auth = AuthService(self.db, self.data, AuthSettings.from_config(cfg.section("auth")))
        self.pool = WorkerPool(cfg.workers, nice=cfg["index.nice"])
        await self._recover_from_crash()
        self.storage.open_state_file()
        places_db = self.data / "places.db"
        self.notifier.extend_timeout(300, "preparing offline places")  # minutes on a Pi the first time
        try:
            await self.pool.run(build_places_db, places_db)
            self.places = PlaceIndex(places_db)
        except Exception as exc:  # places are a nicety: index without them rather than not at all
            log.warning("offline places unavailable: %s", exc)
            self.places = None
        thumb_settings = ThumbSettings(format=cfg["thumbnails.format"], quality=cfg["thumbnails.quality"])
        tagging = self.tagging_settings()
        self.indexer = Indexer(
            self.db, self.pool, root=self.library, thumbs=self.thumbs, settings=thumb_settings,
            limits=DecodeLimits(max_pixels=cfg["index.max_pixels"], max_decode_bytes=cfg["index.max_decode_mib"] << 20),
            places=self.places,
            exiftool=cfg["index.exiftool"], exiftool_timeout=cfg["index.exiftool_timeout"],
            ffmpeg=cfg["index.ffmpeg"], ffprobe=cfg["index.ffprobe"], tagging=bool(tagging.tasks()),
            on_stored=self.stored.emit, gate=self.gate)
        # One job more than workers keeps every worker busy while a job waits for the writer.
        self.queue = JobQueue(self.db, concurrency=self.pool.workers + 1, retries=cfg["index.job_retries"],
                              storage=self.storage)
        self.storage.listeners.append(self.queue.wake)
        self.queue.pause_listeners.append(self._pause_changed)
        self.queue.register("index", self.indexer.handle, self.indexer.failed)
        if tagging.tasks():
            self.tagger = Tagger(self.db, self.pool, settings=tagging, thumbs=self.thumbs,
                                 thumb_settings=thumb_settings, on_tagged=self.tagged.emit)
            self.queue.register("tag", self.tagger.handle, self.tagger.failed)
            for task, state in self.tagger.models.states().items():
                if state["state"] in ("missing", "failed"):
                    log.warning("tagging: %s model %s: %s", task, state["state"], state["reason"])
            await self.tagger.requeue_backlog()
        self.scanner = Scanner(self.db, self.pool, self.library, follow_symlinks=cfg["index.follow_symlinks"],
                               gate=self.gate)
        self.events = EventService(self)
        # one rule for events: a change stages them in its own write transaction (db.write_staged),
        # into the bus's outbox, which delivers them after the commit
        self.db.outbox = self.events.bus
        await self.events.start()
        self.imports = ImportRuns(self)
        self.queue.start()
        log.info("shoebox %s: library %s, data %s, %d workers", __version__, self.library, self.data,
                 self.pool.workers)

    async def _backup_before_migrations(self) -> None:
        """An existing database that this version will migrate is copied first, into
        data/backups/pre-migration-<version>-<time>/ (the last 3 kept; `shoebox restore` takes
        them): a migration that goes wrong, or a downgrade, loses nothing. A new or current
        database has nothing to save, so this costs a normal start one PRAGMA."""
        shipped = len(migrations())
        if not self.db_path.is_file():
            return
        if 0 < await asyncio.to_thread(schema_version, self.db_path) < shipped:
            self.notifier.extend_timeout(600, "backing up the database before updating it")
            await asyncio.to_thread(pre_migration_backup, self.db_path, self.data, shipped)

    @property
    def _running_marker(self) -> Path:
        return self.data / "shoebox.running"

    async def _recover_from_crash(self) -> None:
        """A marker file exists from start to a clean stop; finding it at start-up means the last
        run was killed (kill -9, power cut). Jobs and the database recover by themselves; what
        is left to tidy is every temporary file a write in flight left behind (the registry in
        daemon.system.durable: thumbnails, poster frames, the places database, import reports,
        uploads and imports in the library). The data folder's lock is held, so no other Shoebox
        writes them; library files made by this run are spared by their time."""
        assert self.pool is not None
        if self._running_marker.exists():
            removed = await self.pool.run(sweep_temp_files, self.data, "data")
            log.warning("the last run did not stop cleanly; removed %d unfinished files in the data folder", removed)
            self.spawn(self._sweep_library(time.time()), "sweep-library")
        self._running_marker.touch()

    async def _sweep_library(self, started: float) -> None:
        """Uploads and imports a killed run was copying: in the background, since a large library
        on a network share takes a while to walk."""
        assert self.pool is not None
        if not self.library.is_dir():
            return
        removed = await self.pool.run(lambda: sweep_temp_files(self.library, "library", older_than=started,
                                                               skip=(self.data,)))
        if removed:
            log.warning("removed %d unfinished upload or import files from the library", removed)

    def _take_lock(self) -> None:
        """One process per data directory: two would run the same jobs twice (daemon.system.datalock)."""
        self._lock_fd = datalock.take(self.data)

    def tagging_settings(self) -> TaggingSettings:
        t = self.config.section("tagging")
        return TaggingSettings(
            enabled=t["enabled"], labels=t["labels"], faces=t["faces"], nsfw=t["nsfw"],
            nsfw_threshold=t["nsfw_threshold"], models_dir=Path(t["models_dir"]), idle_unload=t["idle_unload"],
            threads=t["threads"], face_min_size=t["face_min_size"], match_threshold=t["match_threshold"])

    def _storage_changed(self, type: str, data: dict[str, Any]) -> None:
        """storage.full / storage.ok: announce it like any other event, and refresh the MQTT state.
        (On a disk that is truly full the outbox cannot store it; live listeners still get it.)"""
        if self.events is None:
            return
        self.events.publish(type, data)
        if self.events.mqtt is not None:
            self.events.mqtt.request_state()

    def _pause_changed(self) -> None:
        """Indexing paused or resumed (API, MQTT): the MQTT state document says so at once."""
        if self.events is not None and self.events.mqtt is not None:
            self.events.mqtt.request_state()

    # -- background services (serve) ----------------------------------------------------------------------

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        """Start a background task and keep a reference so it is neither lost nor collected."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def scan(self, only: list[bytes] | None = None) -> ScanReport:
        assert self.scanner is not None and self.queue is not None
        report = await self.scanner.scan(only)
        if self.events is not None:  # index.started is in the outbox before the first photo's events
            await self.events.index.on_scan(report)
        if report.queued:
            self.queue.wake()
        return report

    def start_background(self) -> None:
        """Watcher, periodic rescans and the first scan: what `shoebox serve` adds to `start`."""
        cfg = self.config
        if cfg["index.scan_on_start"]:
            self.spawn(self.scan(), "first-scan")
        if cfg["index.watch"]:
            self.watcher = LibraryWatcher(self.library, self.scan)
            self.spawn(self.watcher.run(), "watcher")
        if cfg["index.rescan_interval"]:
            self.spawn(self._rescan_forever(cfg["index.rescan_interval"]), "rescans")
        if self.tagger is not None:
            self.spawn(self._watch_models(), "models")
        if self.events is not None:
            self.spawn(self.events.start_transports(), "events-transports")
        backup = BackupSettings.from_config(cfg.section("backup"))
        if backup.enabled:
            self.backups = BackupScheduler(self, backup)
            self.spawn(self.backups.run_forever(), "backups")

    async def _watch_models(self, interval: float = 30.0) -> None:
        """Tag the backlog once a missing or broken model file is usable, and unload idle models."""
        assert self.tagger is not None and self.queue is not None
        while True:
            await asyncio.sleep(interval)
            try:
                if await self.tagger.requeue_backlog():
                    self.queue.wake()
                self.tagger.models.unload_idle()
            except Exception:
                log.exception("checking the tagging models failed")

    async def _rescan_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.scan()
            except Exception:
                log.exception("periodic rescan failed")

    async def run_import(self, folder: Path | str | None, *, move: bool = False) -> ImportReport:
        """Import a folder into the library's dated folders and return the report once every file
        is copied (or moved) and the new folders are scanned (`shoebox import`, MQTT `cmd/import`).
        No folder: `[import] import_folder`. A folder that cannot be imported raises ImportRefused
        (another import running: ImportBusy) and is announced as an `error` event, since a home
        automation command has nobody else to tell."""
        assert self.imports is not None
        if folder is None or not str(folder).strip():
            folder = self.config["import.import_folder"]
        try:
            if not str(folder).strip():
                raise ImportRefused("no folder to import was given and [import] import_folder is empty")
            return await self.imports.run(Path(str(folder).strip()), move=move)
        except Exception as exc:
            if self.events is not None:
                self.events.publish("error", {"kind": "import", "folder": str(folder or ""), "error": str(exc)})
            raise

    async def index_once(self) -> ScanReport:
        """Scan, then run every queued job to the end (`shoebox index`)."""
        assert self.queue is not None
        report = await self.scan()
        await self.queue.wait_idle()
        return report

    async def status(self) -> dict[str, Any]:
        assert self.db is not None and self.queue is not None
        status = await library_status(self.db)
        status["version"] = __version__
        status["library"] = str(self.library)
        status["uptime_s"] = round(time.time() - self.started_at, 1)
        status["indexing"] = bool(self.queue.in_flight) or bool(self.scanner and self.scanner.running)
        status["paused"] = self.queue.paused  # indexing paused (API POST /index/stop, MQTT cmd/index pause)
        status["workers"] = self.pool.workers if self.pool else 0
        status["watching"] = bool(self.watcher and self.watcher.active)
        status["places"] = self.places is not None
        status["storage"] = self.storage.status() if self.storage else {"state": "unknown"}
        status["tagging"] = self.tagger.status() if self.tagger else {"enabled": False}
        if self.tagger:
            status["tagging"]["backlog"] = status["queue"].get("tag", 0)
        if self.events is not None:
            status["events"] = await self.events.status()
        return status

    # -- staged stop ------------------------------------------------------------------------------------

    async def stop(self, timeout: float = 30.0) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.imports is not None:
            self.imports.stop()  # a copy in a worker thread stops at its next chunk
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5.0)
        if self.queue is not None:
            await self.queue.stop(timeout=timeout)
        if self.storage is not None:
            await self.storage.stop()
        if self.events is not None:
            await self.events.stop()
        if self.pool is not None:
            await self.pool.shutdown()
        if self.places is not None:
            self.places.close()
        if self.db is not None:
            await self.db.close()
        if self.auth is not None:
            self.auth.close()
        if self._lock_fd is not None:
            self._running_marker.unlink(missing_ok=True)  # a clean stop: nothing to recover next time
            os.close(self._lock_fd)
            self._lock_fd = None

    async def __aenter__(self) -> "App":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

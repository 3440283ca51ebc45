"""Backups on a schedule while `shoebox serve` runs: `[backup] schedule`, `hour`, `destination`,
`keep`.

Why "the first full hour `hour` at least a day (a week) after the last backup" and not a cron
line: an appliance's owner picks "daily" and an hour at night; a missed night (the box was off,
the disk unplugged) is simply done the next night. The last backup is read from the destination
itself (its newest manifest), so a restart neither repeats nor forgets one. The clock is checked
again at least every five minutes: a Pi without a real-time clock learns the time from the
network only after it has started.

The backup itself runs in a thread (never on the event loop) and reads the database through its
own connection, so serving and indexing go on meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from daemon.backup import s3
from daemon.backup.make import BackupOptions, BackupResult, list_backups, make_backup, prune

if TYPE_CHECKING:  # pragma: no cover
    from daemon.app import App

log = logging.getLogger(__name__)

INTERVALS = {"hourly": timedelta(hours=1), "daily": timedelta(days=1), "weekly": timedelta(days=7)}
SLACK = timedelta(hours=1)  # a backup that ran at 03:00:40 makes the next at 03:00, not a day later
RECHECK_S = 300.0


@dataclass(frozen=True)
class BackupSettings:
    schedule: str  # off | hourly | daily | weekly
    hour: int
    destination: str
    keep: int
    thumbnails: bool
    originals: bool
    s3: s3.S3Settings = s3.S3Settings()

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> "BackupSettings":
        return cls(schedule=section["schedule"], hour=section["hour"], destination=str(section["destination"]).strip(),
                   keep=section["keep"], thumbnails=section["thumbnails"], originals=section["originals"],
                   s3=s3.S3Settings.from_config(section))

    @property
    def enabled(self) -> bool:
        return self.schedule != "off"


def next_run(schedule: str, hour: int, last: datetime | None, now: datetime) -> datetime:
    """When the next scheduled backup is due (local, naive datetimes). `hourly`: an hour after the
    last (now if there is none); `daily`/`weekly`: the first `hour`:00 that is at least a day (a
    week) after the last, and not in the past."""
    interval = INTERVALS[schedule]
    if schedule == "hourly":
        return now if last is None else max(now, last + interval - timedelta(minutes=5))
    earliest = now if last is None else max(now, last + interval - SLACK)
    candidate = earliest.replace(hour=hour, minute=0, second=0, microsecond=0)
    if candidate < earliest:
        candidate += timedelta(days=1)
    return candidate


class BackupScheduler:
    """The App's scheduled backups (App.backups). `clock` is the wall clock (tests move it)."""

    def __init__(self, app: "App", settings: BackupSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.settings = settings
        self.clock = clock
        self.last_result: BackupResult | None = None
        self.last_error: str | None = None
        self.running = False

    @property
    def destination(self) -> str:
        dest = self.settings.destination
        return dest if s3.is_s3(dest) else str(Path(dest).expanduser())

    def _last_backup(self, instance: str | None) -> datetime | None:
        if s3.is_s3(self.destination):
            backups: list[tuple[Any, Any]] = s3.list_s3_backups(self.destination, self.settings.s3, instance=instance)
        else:
            backups = list_backups(Path(self.destination), instance=instance)
        if not backups:
            return None
        created = datetime.fromisoformat(backups[-1][1].created)
        return created.astimezone().replace(tzinfo=None)  # local wall time, as `hour` is meant

    async def _instance(self) -> str | None:
        events = self.app.events
        return events.instance_id if events is not None and events.instance_id else None

    async def run_forever(self) -> None:
        instance = await self._instance()
        while True:
            try:
                last = await asyncio.to_thread(self._last_backup, instance)
                now = datetime.fromtimestamp(self.clock())
                due = next_run(self.settings.schedule, self.settings.hour, last, now)
                wait = (due - now).total_seconds()
                if wait > 0:
                    log.debug("next scheduled backup at %s", due)
                    await asyncio.sleep(min(wait, RECHECK_S))
                    continue
                await self.run_once(prune_to=self.settings.keep)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a disk that is not plugged in: say so, try again at the next time
                self.last_error = str(exc)
                log.error("scheduled backup to %s failed: %s", self.destination, exc)
                if self.app.events is not None:
                    self.app.events.publish("error", {"kind": "backup", "destination": str(self.destination),
                                                      "error": str(exc)})
                await asyncio.sleep(RECHECK_S)

    async def run_once(self, *, prune_to: int | None = None) -> BackupResult:
        """One backup now, in a thread; then keep the `prune_to` newest of this library's backups."""
        cancel = threading.Event()
        app = self.app
        options = BackupOptions(thumbnails=self.settings.thumbnails, originals=self.settings.originals)
        instance = await self._instance()

        def work() -> BackupResult:
            dest = self.destination
            if s3.is_s3(dest):
                result = s3.make_s3_backup(url=dest, settings=self.settings.s3, db_path=app.db_path, data=app.data,
                                           config_file=app.config.file, library=app.library, options=options,
                                           cancelled=cancel.is_set)
                if prune_to:
                    result.pruned = s3.prune_s3(dest, self.settings.s3, prune_to, instance=instance)  # type: ignore[assignment]
                return result
            result = make_backup(db_path=app.db_path, data=app.data, destination=Path(dest),
                                 config_file=app.config.file, library=app.library, options=options,
                                 cancelled=cancel.is_set)
            if prune_to:
                result.pruned = prune(Path(dest), prune_to, instance=instance)
            return result

        self.running = True
        try:
            result = await asyncio.to_thread(work)
        except asyncio.CancelledError:
            cancel.set()  # the thread stops at its next step and removes its unfinished folder
            raise
        finally:
            self.running = False
        self.last_result, self.last_error = result, None
        log.info("backup %s: %.1f MB in %.1f s%s", result.url or result.path, result.bytes / 1e6, result.seconds,
                 f"; removed {len(result.pruned)} older" if result.pruned else "")
        return result

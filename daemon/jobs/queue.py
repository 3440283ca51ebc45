"""The persistent job queue and its runner.

A job is a row in SQLite until the transaction that stores its result deletes it, so a crash at
any point (kill -9, power cut) leaves either the job (it runs again, and its handler is
idempotent) or its result, never neither and never both. "Running" is kept in memory only: after
a restart every job is simply queued again.

A failure is either transient or permanent (daemon.jobs.failures.classify). A transient one (the
file or the library gone for now, a dropping share) is neither an attempt nor an error: the job
waits until `not_before`, with a backoff that doubles per wait, and a scan that sees its file or
the library again lets it run at once. If the library itself is gone, every queued job of that
kind waits with it instead of failing one by one. Only permanent failures count as attempts.

Priorities: lower runs first. Index jobs (thumbnails) come before tagging jobs, so a new photo is
visible before it is tagged. The runner keeps at most `concurrency` jobs in flight, each job a
coroutine that hands its CPU steps to the worker pool.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from daemon.jobs.failures import FILE_WAIT_LIMIT, Transient, backoff_s, classify
from daemon.store.db import Database
from daemon.system.diskspace import DiskSpace, is_no_space
from daemon.timeutil import utc_from_timestamp, utcnow

log = logging.getLogger(__name__)

PRIORITY_INDEX = 10
PRIORITY_TAG = 50
# What "pause indexing" stops (the API's POST /index/stop, MQTT cmd/index "pause"): indexing and tagging.
PAUSABLE = ("index", "tag")


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    file_id: int | None
    photo_id: int | None
    priority: int
    attempts: int
    waits: int = 0  # transient failures waited out so far (daemon.jobs.failures)


Handler = Callable[[Job], Awaitable[None]]


def enqueue(conn: sqlite3.Connection, kind: str, *, priority: int, file_id: int | None = None,
            photo_id: int | None = None) -> int:
    """Add a job inside the caller's write transaction (a no-op if the same job is queued).
    Returns 1 if a job was added, 0 if it was already there."""
    now = utcnow()
    cur = conn.execute(
        "INSERT OR IGNORE INTO jobs (kind, file_id, photo_id, priority, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (kind, file_id, photo_id, priority, now, now),
    )
    return cur.rowcount


PAUSED_KEY = "index.paused_at"


def set_paused(conn: sqlite3.Connection) -> tuple[str, bool]:
    """Store that indexing is paused (kept if it already was): since when, and whether it is new."""
    newly = conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (PAUSED_KEY, utcnow())).rowcount
    since = conn.execute("SELECT value FROM meta WHERE key = ?", (PAUSED_KEY,)).fetchone()[0]
    return str(since), bool(newly)


def clear_paused(conn: sqlite3.Connection) -> bool:
    """Store that indexing runs; True if it was paused."""
    return bool(conn.execute("DELETE FROM meta WHERE key = ?", (PAUSED_KEY,)).rowcount)


def paused_since(conn: sqlite3.Connection) -> str | None:
    """When indexing was paused, or None (for the queue, `shoebox status` and `shoebox index --pause`)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (PAUSED_KEY,)).fetchone()
    return None if row is None else str(row[0])


def finish(conn: sqlite3.Connection, job: Job) -> None:
    """Delete a done job inside the transaction that stored its result."""
    conn.execute("DELETE FROM jobs WHERE id = ?", (job.id,))


@dataclass
class QueueStats:
    done: int = 0
    failed: int = 0
    retried: int = 0
    started_at: float = field(default_factory=time.monotonic)
    by_kind: dict[str, int] = field(default_factory=dict)


class JobQueue:
    """Runs queued jobs from the database through registered handlers."""

    def __init__(self, db: Database, *, concurrency: int, retries: int = 2,
                 storage: DiskSpace | None = None) -> None:
        self.db = db
        # Free space gate: no job starts while a disk is full, and a job that meets a full disk
        # stays queued (not an attempt, not an error) until the space is back.
        self.storage = storage
        self.concurrency = max(1, concurrency)
        self.retries = retries
        self._handlers: dict[str, Handler] = {}
        self._failure_handlers: dict[str, Callable[[Job, str], Awaitable[None]]] = {}
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._stopping = False
        self._paused_kinds: set[str] = set()
        #: When indexing was paused (UTC text), None while it runs: the one pause state the API, the
        #: MQTT commands, `shoebox index --pause` and /status all read and change. It is kept in the
        #: database (meta 'index.paused_at'), so another process (the CLI) can change it; this is the
        #: running queue's copy, synced at every look for work (see _sync_pause).
        self.paused_at: str | None = None
        self._pause_version = 0  # bumped by every change made here: a sync read before it is stale
        #: told after the pause state changed (the App refreshes the MQTT state document)
        self.pause_listeners: list[Callable[[], None]] = []
        self._runner: asyncio.Task[None] | None = None
        self.stats = QueueStats()

    def register(self, kind: str, handler: Handler,
                 on_failure: Callable[[Job, str], Awaitable[None]] | None = None) -> None:
        """`handler(job)` must store its result and call `finish` in one write transaction.
        `on_failure(job, reason)` records a job that failed more often than `retries`."""
        self._handlers[kind] = handler
        if on_failure is not None:
            self._failure_handlers[kind] = on_failure

    def pause(self, kind: str) -> None:
        self._paused_kinds.add(kind)

    def resume(self, kind: str) -> None:
        self._paused_kinds.discard(kind)
        self.wake()

    async def pause_indexing(self) -> bool:
        """Stop starting index and tag jobs: those in flight finish, queued ones stay queued in
        SQLite. Lasts until resume_indexing or a restart (a restart always indexes: a forgotten
        pause must not leave a library unindexed for months). False if it was paused already."""
        self._pause_version += 1
        since, newly = await self.db.write(set_paused)
        self._apply_pause(since)
        return newly

    async def resume_indexing(self) -> bool:
        """Start index and tag jobs again. False if indexing was not paused."""
        self._pause_version += 1
        was = await self.db.write(clear_paused)
        self._apply_pause(None)
        return was

    def _apply_pause(self, since: str | None) -> None:
        """Make the running queue follow the stored state (and tell the listeners if it changed)."""
        changed = (since is None) != (self.paused_at is None)
        self.paused_at = since
        if not changed:
            return
        for kind in PAUSABLE:
            if since is None:
                self.resume(kind)
            else:
                self.pause(kind)
        self._pause_changed()

    async def _sync_pause(self) -> None:
        """Follow a pause or resume another process (`shoebox index --pause`) stored."""
        version = self._pause_version
        since = await self.db.read(paused_since)
        if version == self._pause_version:  # nothing here changed it while we read
            self._apply_pause(since)

    def _pause_changed(self) -> None:
        for listener in list(self.pause_listeners):
            listener()

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    def wake(self) -> None:
        """New jobs were queued: look again now instead of at the next poll."""
        self._idle.clear()
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def pending(self) -> dict[str, int]:
        rows = await self.db.fetchall(
            "SELECT kind, count(*) AS n FROM jobs WHERE state = 'queued' GROUP BY kind")
        return {r["kind"]: r["n"] for r in rows}

    def start(self) -> None:
        if self._runner is None:
            self._stopping = False
            self._runner = asyncio.create_task(self._run(), name="job-runner")

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs and wait (up to timeout) for those in flight to finish."""
        self._stopping = True
        self._wake.set()
        if self._runner is not None:
            await self._runner
            self._runner = None
        if self._in_flight:
            done, pending = await asyncio.wait(list(self._in_flight.values()), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Wait until no job is queued or running (for one-pass `shoebox index`)."""
        while True:
            self.wake()
            await self._idle.wait()
            # Double-check: a job may have been queued by a handler that just finished.
            if not self._in_flight and not await self._next_batch(1):
                return

    async def _next_batch(self, limit: int) -> list[Job]:
        exclude = list(self._in_flight)
        paused = list(self._paused_kinds)
        sql = ("SELECT id, kind, file_id, photo_id, priority, attempts, waits FROM jobs WHERE state = 'queued'"
               " AND (not_before IS NULL OR not_before <= ?)")
        params: list[object] = [utcnow()]
        if exclude:
            sql += f" AND id NOT IN ({','.join('?' * len(exclude))})"
            params += exclude
        if paused:
            sql += f" AND kind NOT IN ({','.join('?' * len(paused))})"
            params += paused
        sql += " ORDER BY priority, id LIMIT ?"
        params.append(limit)
        rows = await self.db.fetchall(sql, params)
        return [Job(r["id"], r["kind"], r["file_id"], r["photo_id"], r["priority"], r["attempts"], r["waits"])
                for r in rows]

    async def waiting(self) -> dict[str, int]:
        """Jobs waiting out a transient failure, by reason (library, gone, file, storage)."""
        rows = await self.db.fetchall(
            "SELECT wait_reason, count(*) AS n FROM jobs WHERE state = 'queued' AND not_before > ?"
            " GROUP BY wait_reason", (utcnow(),))
        return {r["wait_reason"] or "unknown": r["n"] for r in rows}

    async def _run(self) -> None:
        try:
            await self.db.write(clear_paused)  # a start always indexes (see pause_indexing)
        except Exception as exc:  # a full disk: the pause (if any) stays; the queue must still run
            log.warning("could not clear a stored indexing pause: %s", exc)
        while not self._stopping:
            try:
                await self._sync_pause()
            except Exception as exc:  # pragma: no cover - a read failing must not stop the queue
                log.warning("could not read the indexing pause: %s", exc)
            free = self.concurrency - len(self._in_flight)
            paused = self.storage is not None and not self.storage.ready()
            jobs = await self._next_batch(free) if free > 0 and not paused else []
            for job in jobs:
                task = asyncio.create_task(self._execute(job), name=f"job-{job.kind}-{job.id}")
                self._in_flight[job.id] = task
            if not jobs and not self._in_flight and not paused:
                self._idle.set()
            self._wake.clear()
            if free > 0 and jobs:
                continue  # there may be more: fill every free slot before sleeping
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=5.0)
            except asyncio.TimeoutError:
                pass

    async def _execute(self, job: Job) -> None:
        handler = self._handlers.get(job.kind)
        try:
            if handler is None:
                raise RuntimeError(f"no handler for job kind {job.kind!r}")
            await handler(job)
            self.stats.done += 1
            self.stats.by_kind[job.kind] = self.stats.by_kind.get(job.kind, 0) + 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a handler's failure must never stop the queue
            if self.storage is not None and is_no_space(exc):
                self.storage.report(exc)  # transient: the job stays queued as it is
                return
            reason = f"{type(exc).__name__}: {exc}"
            failure = classify(exc)
            try:
                if isinstance(failure, Transient) and await self._defer(job, failure):
                    return
                await self._failed(job, reason)
            except Exception as write_exc:  # recording the failure failed too: never escape the task
                if self.storage is not None and is_no_space(write_exc):
                    self.storage.report(write_exc)
                else:
                    log.exception("could not record the failure of job %s %s", job.kind, job.id)
        finally:
            self._in_flight.pop(job.id, None)
            self._wake.set()

    async def _defer(self, job: Job, failure: Transient) -> bool:
        """A transient failure: the job waits (backoff) instead of failing. False when a single
        file has waited too often while its volume looked fine: then it is a permanent error."""
        waits = job.waits + 1
        if failure.scope in ("file", "gone") and waits > FILE_WAIT_LIMIT:
            return False
        delay = backoff_s(failure.scope, waits)
        not_before = utc_in(delay)
        now = utcnow()
        if failure.scope == "library":
            # the whole library is gone: every queued job of this kind waits for it, not only this one
            log.warning("%s jobs wait for the library (retry in %.0f s, or as soon as a scan finds it): %s",
                        job.kind, delay, failure.reason)
            await self.db.execute_write(
                "UPDATE jobs SET not_before = max(coalesce(not_before, ''), ?), waits = max(waits, ?),"
                " wait_reason = 'library', error = ?, updated_at = ? WHERE kind = ? AND state = 'queued'",
                (not_before, waits, failure.reason, now, job.kind))
        else:
            log.info("job %s %s waits %.0f s (%s, wait %d): %s", job.kind, job.id, delay, failure.scope, waits,
                     failure.reason)
            await self.db.execute_write(
                "UPDATE jobs SET not_before = ?, waits = ?, wait_reason = ?, error = ?, updated_at = ? WHERE id = ?",
                (not_before, waits, failure.scope, failure.reason, now, job.id))
        return True

    async def _failed(self, job: Job, reason: str) -> None:
        attempts = job.attempts + 1
        if attempts <= self.retries:
            self.stats.retried += 1
            log.info("job %s %s failed (attempt %d), will retry: %s", job.kind, job.id, attempts, reason)
            await self.db.execute_write(
                "UPDATE jobs SET attempts = ?, error = ?, updated_at = ? WHERE id = ?",
                (attempts, reason, utcnow(), job.id))
            return
        self.stats.failed += 1
        log.warning("job %s %s failed for good: %s", job.kind, job.id, reason)
        on_failure = self._failure_handlers.get(job.kind)
        if on_failure is not None:
            try:
                await on_failure(job, reason)
                return
            except Exception as exc:  # pragma: no cover - the record below still happens
                log.exception("recording the failure of job %s failed: %s", job.id, exc)
        await self.db.execute_write(
            "UPDATE jobs SET state = 'failed', attempts = ?, error = ?, updated_at = ? WHERE id = ?",
            (attempts, reason, utcnow(), job.id))


def utc_in(seconds: float) -> str:
    """The store's time stamp `seconds` from now (rounded up: never earlier than asked)."""
    return utc_from_timestamp(time.time() + seconds + 1)

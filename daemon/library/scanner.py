"""The scanner: compares the library folder with the store and queues what needs indexing.

Incremental by size and modification time: an unchanged file costs one stat and one dictionary
lookup, so a rescan of 10,000 files takes well under a second. A new or changed file gets an index
job; a file that vanished is marked offline, never deleted: a moved file is recognised by its
content hash when the index job for its new path runs, and keeps its photo's identity.

The library itself may vanish: an unplugged USB drive leaves an empty mount point, a NAS share
may not be mounted yet at boot. Every scan, full or partial (the watcher's), first asks the volume
guard (daemon.library.volume) whether the root is still the library as it was known before; a
scan that finds it missing, empty while the store knows files, or another volume, marks nothing
offline and records why, so the library is never emptied because a cable came loose. A folder
that could not be listed (a dropping share) marks nothing offline either.

A file is queued again not only when its size or time changed, but whenever what is indexed does
not match what is there: never indexed (its job was dropped because the file was gone for a
while), indexed at another size/time, or a permanent error judged by another software version.
A job waiting out a transient failure runs at once when the scan sees its file (or the library)
again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from daemon.jobs.failures import judging_version
from daemon.jobs.pool import WorkerPool
from daemon.jobs.queue import PRIORITY_INDEX, enqueue
from daemon.library.formats import Kind, mime_of
from daemon.library.gate import Gate
from daemon.library.volume import LibraryVolume, media_paths, remember
from daemon.library.walk import FoundFile, WalkResult, walk
from daemon.store.db import Database
from daemon.timeutil import utcnow

log = logging.getLogger(__name__)


@dataclass
class ScanReport:
    status: str = "done"  # done | skipped | failed
    reason: str | None = None
    seen: int = 0
    added: int = 0
    changed: int = 0
    offline: int = 0
    online: int = 0
    ignored: int = 0
    queued: int = 0
    resumed: int = 0  # jobs waiting out a transient failure that may run again now
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def display_path(rel: bytes) -> str:
    """A readable form of a raw path: invalid UTF-8 bytes shown as \\xNN escapes."""
    return rel.decode("utf-8", "backslashreplace")


def split_rel(rel: bytes) -> tuple[bytes, bytes]:
    folder, _, name = rel.rpartition(b"/")
    return folder, name


def stem_of(name: bytes) -> str:
    """Lower-case name without its last extension: 'IMG_1.JPG' and 'IMG_1.cr2' stack as 'img_1'."""
    text = display_path(name).lower()
    base, dot, _ = text.rpartition(".")
    return base if dot and base else text


def sidecar_targets(sidecar_name: bytes) -> tuple[str, str]:
    """For a sidecar, (full media name, media stem) it may belong to, both lower-case:
    'photo.jpg.xmp' → ('photo.jpg', 'photo.jpg'); 'photo.xmp' → ('photo', 'photo');
    Google Takeout 'photo.jpg.supplemental-metadata.json' → ('photo.jpg', ...)."""
    base = stem_of(sidecar_name)
    for suffix in (".supplemental-metadata", ".supplemental-metada", ".suppl"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base, base


class Scanner:
    """Scans the library root into the store. One scan at a time (an asyncio lock)."""

    def __init__(self, db: Database, pool: WorkerPool, root: Path, *, follow_symlinks: bool = True,
                 gate: Gate | None = None) -> None:
        self.db = db
        self.pool = pool
        self.root = root
        self.follow_symlinks = follow_symlinks
        self.gate = gate  # links that leave the library are not followed (daemon.library.gate)
        self.volume = LibraryVolume(db, pool, root)  # the unplugged/empty/swapped-volume guard
        self._lock = asyncio.Lock()
        self.running = False
        self.last: ScanReport | None = None

    async def scan(self, only: list[bytes] | None = None) -> ScanReport:
        """A full scan, or a partial one of the folders in `only` (relative, for the watcher)."""
        async with self._lock:
            self.running = True
            try:
                report = await self._scan(only)
            finally:
                self.running = False
            self.last = report
            return report

    async def _scan(self, only: list[bytes] | None) -> ScanReport:
        started = utcnow()
        root = os.fsencode(self.root)
        if only is not None and b"" in only:
            only = None  # the root itself changed (the watcher): that is a full scan
        # The guard before the walk (never walk a foreign volume) and after it (the volume may
        # have gone while it was walked), for every scan, partial or full.
        reason = await self.volume.problem()
        if reason is not None:
            return await self._record_skip(started, reason)
        result: WalkResult = await self.pool.run(walk, root, follow_symlinks=self.follow_symlinks, only=only,
                                                 gate=self.gate)
        media_found = sum(1 for f in result.files if f.kind is not Kind.SIDECAR)
        reason = await self.volume.problem(media_found if only is None else None)
        if reason is not None:
            return await self._record_skip(started, reason)
        try:
            device = await self.pool.run(lambda: os.stat(root).st_dev)
        except OSError as exc:  # gone between the guard and now
            return await self._record_skip(started, await self.volume.problem() or f"library folder: {exc}")
        report = await self.db.write(lambda conn: self._sync(conn, result, only, started, device))
        for rel, why in result.errors:
            report.unreadable.append((display_path(rel), why))
        if report.unreadable:
            log.warning("scan: %d unreadable folders or files, e.g. %s", len(report.unreadable), report.unreadable[0])
        return report

    async def retry_errors(self) -> int:
        """`shoebox index --retry-errors`: queue every file recorded as an error again, and let
        every job that waits out a transient failure run now. Returns the jobs made runnable."""
        def queue(conn: sqlite3.Connection) -> int:
            now = utcnow()
            n = conn.execute(
                "INSERT OR IGNORE INTO jobs (kind, file_id, priority, created_at, updated_at)"
                " SELECT 'index', id, ?, ?, ? FROM files WHERE state = 'error' AND kind != 'sidecar' AND offline = 0",
                (PRIORITY_INDEX, now, now)).rowcount
            n += conn.execute("UPDATE jobs SET state = 'queued', attempts = 0, updated_at = ? WHERE state = 'failed'",
                              (now,)).rowcount
            return n + resume_jobs(conn, "1", ())

        return await self.db.write(queue)

    async def _record_skip(self, started: str, reason: str) -> ScanReport:
        log.warning("scan skipped: %s", reason)

        def record(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO scans (started_at, finished_at, status, reason) VALUES (?, ?, 'skipped', ?)",
                         (started, utcnow(), reason))
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('library.status', ?)", (reason,))

        await self.db.write(record)
        return ScanReport(status="skipped", reason=reason)

    def _sync(self, conn: sqlite3.Connection, result: WalkResult, only: list[bytes] | None,
              started: str, device: int) -> ScanReport:
        """Runs in the writer thread: one transaction for the whole comparison."""
        now = utcnow()
        report = ScanReport(seen=len(result.files), ignored=result.ignored)
        known: dict[bytes, sqlite3.Row] = {}
        columns = "id, path, size, mtime_ns, offline, kind, photo_id, state, indexed_size, indexed_mtime_ns, error_version"
        if only is None:
            rows = conn.execute(f"SELECT {columns} FROM files")
        else:
            clauses = " OR ".join("(path = ? OR substr(path, 1, ?) = ?)" if d else "1" for d in only)
            params: list[object] = []
            for d in only:
                if d:
                    params += [d, len(d) + 1, d + b"/"]
            rows = conn.execute(f"SELECT {columns} FROM files WHERE {clauses}", params)
        for row in rows:
            known[bytes(row["path"])] = row
        judge = judging_version()
        # jobs waiting out a transient failure, by file (usually none: one small query)
        waiting = {r["file_id"]: r["wait_reason"] for r in conn.execute(
            "SELECT file_id, wait_reason FROM jobs WHERE kind = 'index' AND not_before IS NOT NULL"
            " AND file_id IS NOT NULL")}

        touched_sidecars: list[bytes] = []
        seen_paths: set[bytes] = set()
        for f in result.files:
            seen_paths.add(f.rel)
            row = known.get(f.rel)
            folder, name = split_rel(f.rel)
            if row is None:
                cur = conn.execute(
                    "INSERT INTO files (path, path_text, dir, stem, kind, mime, size, mtime_ns, inode, first_seen, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (f.rel, display_path(f.rel), folder, stem_of(name), f.kind.value, mime_of(display_path(name)),
                     f.size, f.mtime_ns, f.inode, now, now))
                report.added += 1
                if f.kind is Kind.SIDECAR:
                    touched_sidecars.append(f.rel)
                else:
                    enqueue(conn, "index", priority=PRIORITY_INDEX, file_id=cur.lastrowid)
                    report.queued += 1
                continue
            changed = row["size"] != f.size or row["mtime_ns"] != f.mtime_ns
            if row["offline"]:
                conn.execute("UPDATE files SET offline = 0, missing_since = NULL, updated_at = ? WHERE id = ?",
                             (now, row["id"]))
                report.online += 1
            if changed:
                conn.execute("UPDATE files SET size = ?, mtime_ns = ?, inode = ?, updated_at = ? WHERE id = ?",
                             (f.size, f.mtime_ns, f.inode, now, row["id"]))
                report.changed += 1
                if f.kind is Kind.SIDECAR:
                    touched_sidecars.append(f.rel)
            if f.kind is not Kind.SIDECAR and (changed or needs_index(row, f, judge)):
                report.queued += enqueue(conn, "index", priority=PRIORITY_INDEX, file_id=row["id"])
            if row["id"] in waiting and waiting[row["id"]] != "storage":
                report.resumed += resume_jobs(conn, "file_id = ?", (row["id"],), forget=waiting[row["id"]] != "file")

        # a folder that could not be listed says nothing about the files in it (a dropping share)
        unlisted = [rel for rel, _ in result.errors]
        for rel, row in known.items():
            if rel in seen_paths or row["offline"]:
                continue
            if unlisted and any(not d or rel == d or rel.startswith(d + b"/") for d in unlisted):
                continue
            conn.execute("UPDATE files SET offline = 1, missing_since = ?, updated_at = ? WHERE id = ?",
                         (now, now, row["id"]))
            report.offline += 1

        for rel in touched_sidecars:
            report.queued += self._queue_sidecar_owner(conn, rel)

        if report.offline or report.online:
            refresh_photo_offline(conn)
        conn.execute(
            "INSERT INTO scans (started_at, finished_at, status, seen, added, changed, offline, online, ignored)"
            " VALUES (?, ?, 'done', ?, ?, ?, ?, ?, ?)",
            (started, utcnow(), report.seen, report.added, report.changed, report.offline, report.online, report.ignored))
        if only is None:
            remember(conn, device, media_paths(result.files))
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('library.status', 'ok')")
        # the library passed the guard: jobs that waited for it to come back may run now
        report.resumed += resume_jobs(conn, "wait_reason = 'library'", ())
        report.queued += report.resumed
        return report

    @staticmethod
    def _queue_sidecar_owner(conn: sqlite3.Connection, rel: bytes) -> int:
        """A new or changed sidecar re-indexes the media file(s) it belongs to."""
        folder, name = split_rel(rel)
        full, stem = sidecar_targets(name)
        base_stem = full.rpartition(".")[0] or full
        rows = conn.execute(
            "SELECT id, path FROM files WHERE dir = ? AND kind != 'sidecar' AND stem IN (?, ?)",
            (folder, stem, base_stem)).fetchall()
        queued = 0
        for row in rows:
            media_name = display_path(split_rel(bytes(row["path"]))[1]).lower()
            if media_name == full or stem_of(split_rel(bytes(row["path"]))[1]) == stem:
                enqueue(conn, "index", priority=PRIORITY_INDEX, file_id=row["id"])
                queued += 1
        return queued


def needs_index(row: sqlite3.Row, f: FoundFile, judge: str) -> bool:
    """Whether what is indexed for this (unchanged) file does not match what is there: never
    indexed (its job was dropped while the file was gone), indexed at another size or time, or a
    permanent error given by another version of the software."""
    if row["state"] == "new":
        return True
    if row["indexed_size"] != f.size or row["indexed_mtime_ns"] != f.mtime_ns:
        return True
    return row["state"] == "error" and row["error_version"] != judge


def resume_jobs(conn: sqlite3.Connection, where: str, params: tuple[object, ...], *, forget: bool = True) -> int:
    """Let index jobs that wait out a transient failure run now (their file or library is back).
    forget=False keeps the count of waits: a file that fails each time it is seen (a bad sector)
    still becomes an error after daemon.jobs.failures.FILE_WAIT_LIMIT tries."""
    cur = conn.execute(
        "UPDATE jobs SET not_before = NULL, updated_at = ?"
        + (", waits = 0, wait_reason = NULL" if forget else "")
        + f" WHERE kind = 'index' AND not_before IS NOT NULL AND {where}", (utcnow(), *params))
    return cur.rowcount


def refresh_photo_offline(conn: sqlite3.Connection) -> None:
    """A photo is offline when none of its media files is online."""
    conn.execute(
        "UPDATE photos SET offline = NOT EXISTS (SELECT 1 FROM files f WHERE f.photo_id = photos.id"
        " AND f.kind != 'sidecar' AND f.offline = 0)"
        " WHERE offline != NOT EXISTS (SELECT 1 FROM files f WHERE f.photo_id = photos.id"
        " AND f.kind != 'sidecar' AND f.offline = 0)")


"""The scanner: compares the library folder with the store and queues what needs indexing.

Incremental by size and modification time: an unchanged file costs one stat and one dictionary
lookup, so a rescan of 10,000 files takes well under a second. A new or changed file gets an index
job; a file that vanished is marked offline, never deleted: a moved file is recognised by its
content hash when the index job for its new path runs, and keeps its photo's identity.

The library itself may vanish: an unplugged USB drive leaves an empty mount point, a NAS share
may not be mounted yet at boot. A scan that finds the root missing, empty while the store knows
files, or on a different volume with none of the known files on it, marks nothing offline and
records why, so the library is never emptied because a cable came loose.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from daemon.jobs.pool import WorkerPool
from daemon.jobs.queue import PRIORITY_INDEX, enqueue
from daemon.library.formats import Kind, mime_of
from daemon.library.gate import Gate
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
        reason = await self.pool.run(self._root_problem, root)
        if reason is not None:
            return await self._record_skip(started, reason)
        result: WalkResult = await self.pool.run(walk, root, follow_symlinks=self.follow_symlinks, only=only,
                                                 gate=self.gate)
        if only is None:
            reason = await self._volume_problem(root, result)
            if reason is not None:
                return await self._record_skip(started, reason)
        report = await self.db.write(lambda conn: self._sync(conn, result, only, started))
        for rel, why in result.errors:
            report.unreadable.append((display_path(rel), why))
        if report.unreadable:
            log.warning("scan: %d unreadable folders or files, e.g. %s", len(report.unreadable), report.unreadable[0])
        return report

    @staticmethod
    def _root_problem(root: bytes) -> str | None:
        if not os.path.exists(root):
            return f"library folder {os.fsdecode(root)} does not exist (an unplugged drive or an unmounted share?)"
        if not os.path.isdir(root):
            return f"library path {os.fsdecode(root)} is not a folder"
        if not os.access(root, os.R_OK | os.X_OK):
            return f"library folder {os.fsdecode(root)} is not readable by this user"
        return None

    async def _volume_problem(self, root: bytes, result: WalkResult) -> str | None:
        """Refuse to mark files offline when the library looks unplugged or replaced."""
        known_online = await self.db.scalar(
            "SELECT count(*) FROM files WHERE offline = 0 AND kind != 'sidecar'")
        media_found = sum(1 for f in result.files if f.kind is not Kind.SIDECAR)
        if known_online and media_found == 0:
            return (f"library folder {os.fsdecode(root)} is empty but {known_online} files were there last time "
                    "(an empty mount point?); nothing was marked offline")
        device = os.stat(root).st_dev
        stored = await self.db.scalar("SELECT value FROM meta WHERE key = 'library.device'")
        if known_online and stored is not None and int(stored) != device:
            sample = await self.db.fetchall(
                "SELECT path FROM files WHERE offline = 0 AND kind != 'sidecar' ORDER BY random() LIMIT 50")
            present = await self.pool.run(
                lambda: sum(os.path.exists(os.path.join(root, r["path"])) for r in sample))
            if present == 0:
                return (f"library folder {os.fsdecode(root)} is on a different volume than last time and none of "
                        "the known files are on it (another drive mounted there?); nothing was marked offline")
        return None

    async def _record_skip(self, started: str, reason: str) -> ScanReport:
        log.warning("scan skipped: %s", reason)

        def record(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO scans (started_at, finished_at, status, reason) VALUES (?, ?, 'skipped', ?)",
                         (started, utcnow(), reason))
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('library.status', ?)", (reason,))

        await self.db.write(record)
        return ScanReport(status="skipped", reason=reason)

    def _sync(self, conn: sqlite3.Connection, result: WalkResult, only: list[bytes] | None,
              started: str) -> ScanReport:
        """Runs in the writer thread: one transaction for the whole comparison."""
        now = utcnow()
        report = ScanReport(seen=len(result.files), ignored=result.ignored)
        known: dict[bytes, sqlite3.Row] = {}
        if only is None:
            rows = conn.execute("SELECT id, path, size, mtime_ns, offline, kind, photo_id FROM files")
        else:
            clauses = " OR ".join("(path = ? OR substr(path, 1, ?) = ?)" if d else "1" for d in only)
            params: list[object] = []
            for d in only:
                if d:
                    params += [d, len(d) + 1, d + b"/"]
            rows = conn.execute(f"SELECT id, path, size, mtime_ns, offline, kind, photo_id FROM files WHERE {clauses}", params)
        for row in rows:
            known[bytes(row["path"])] = row

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
                else:
                    enqueue(conn, "index", priority=PRIORITY_INDEX, file_id=row["id"])
                    report.queued += 1

        for rel, row in known.items():
            if rel not in seen_paths and not row["offline"]:
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
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('library.device', ?)",
                         (str(os.stat(os.fsencode(self.root)).st_dev),))
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('library.status', 'ok')")
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


def refresh_photo_offline(conn: sqlite3.Connection) -> None:
    """A photo is offline when none of its media files is online."""
    conn.execute(
        "UPDATE photos SET offline = NOT EXISTS (SELECT 1 FROM files f WHERE f.photo_id = photos.id"
        " AND f.kind != 'sidecar' AND f.offline = 0)"
        " WHERE offline != NOT EXISTS (SELECT 1 FROM files f WHERE f.photo_id = photos.id"
        " AND f.kind != 'sidecar' AND f.offline = 0)")


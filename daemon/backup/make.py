"""Making a backup: a consistent copy of the database while the daemon writes, the secrets and
keys of the data folder, the configuration file, and a manifest; and removing old ones.

The database is copied with SQLite's online backup API from a connection of our own holding one
read transaction: in WAL mode a reader never blocks the daemon's writer, and the open transaction
pins one snapshot, so the copy is consistent even while indexing commits beside it (without it,
every commit by another connection would restart the copy). The copy runs in steps of
`STEP_PAGES` so it can be cancelled and report progress between them.

Called from a thread (never on the event loop): everything here is blocking file work.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from daemon import __version__
from daemon.backup.manifest import (MANIFEST, NAME, PRE_MIGRATION, BackupError, Manifest, copy_hashing,
                                    sha256_file)
from daemon.system.durable import fsync_dir, temp_kind

log = logging.getLogger(__name__)

DB_NAME = "shoebox.db"
STEP_PAGES = 4096  # 16 MiB a step with 4 KiB pages
#: Data-folder entries that are never backed up: the database (copied through SQLite instead),
#: state that belongs to one run, rebuilt caches, and the backups themselves.
SKIP_TOP = {"shoebox.lock", "shoebox.running", "shoebox.state", "pins", "backups", "thumbs"}
#: Other SQLite files (places.db is rebuilt at start; a live database cannot be copied as a file).
SKIP_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal", ".sqlite", ".sqlite3", "-wal", "-shm", "-journal")
PARTIAL_PREFIX = ".shoebox-backup-"
PARTIAL_SUFFIX = ".partial"
STALE_PARTIAL_S = 24 * 3600


@dataclass
class BackupOptions:
    thumbnails: bool = False  # thumbs/ (remade on demand when missing, so normally left out)
    originals: bool = False  # the library's own files, as they are (normally the user's own business)


@dataclass
class BackupResult:
    path: Path
    manifest: Manifest
    seconds: float
    bytes: int
    pruned: list[Path] = field(default_factory=list)
    url: str | None = None  # s3://... when it was uploaded (daemon.backup.s3)


def utc_stamp(now: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if now is None else now, timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def iso_utc(now: float | None = None) -> str:
    # milliseconds: `keep` orders backups by this, and two can be made within one second
    return datetime.fromtimestamp(time.time() if now is None else now, timezone.utc).isoformat(timespec="milliseconds")


def _private(path: Path, mode: int) -> None:
    """0700/0600 on the backup; a FAT/exFAT USB disk has no modes and refuses: that is fine."""
    try:
        os.chmod(path, mode)
    except OSError:
        pass


def copy_times(src: Path, dest: Path, mode: int = 0o600) -> None:
    """The source's times on the copy, and `mode`; best effort, since a FAT/exFAT USB disk refuses
    modes (and sometimes times), and that must not fail a backup."""
    try:
        st = os.stat(src)
        os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
    except OSError:
        pass
    _private(dest, mode)


def snapshot_database(db_path: Path, dest: Path, *, cancelled: Callable[[], bool] = lambda: False) -> tuple[int, str | None]:
    """Copy the live database `db_path` to `dest` (a new file) with the online backup API, from
    one read snapshot (see the module docstring). Returns (schema version, instance id) of the copy.
    The copy is made self-contained (rollback journal, not WAL) and checked (quick_check)."""
    if not db_path.is_file():
        raise BackupError(f"there is no database at {db_path} to back up")
    src = sqlite3.connect(db_path, isolation_level=None, timeout=30)
    try:
        src.execute("PRAGMA busy_timeout = 30000")
        src.execute("PRAGMA query_only = ON")
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # 0600 before SQLite writes
        os.close(fd)
        dst = sqlite3.connect(dest, isolation_level=None)
        try:
            src.execute("BEGIN")
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot starts here

            def progress(status: int, remaining: int, total: int) -> None:
                if cancelled():
                    raise BackupError("the backup was cancelled")

            src.backup(dst, pages=STEP_PAGES, progress=progress, sleep=0)
            src.execute("COMMIT")
            dst.execute("PRAGMA journal_mode = DELETE")
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"the copy of {db_path} failed its integrity check: {check}")
            version = dst.execute("PRAGMA user_version").fetchone()[0]
            try:
                row = dst.execute("SELECT value FROM meta WHERE key = 'instance.id'").fetchone()
            except sqlite3.Error:
                row = None
        finally:
            dst.close()
    finally:
        src.close()
    return int(version), (str(row[0]) if row else None)


def data_files(data: Path, *, thumbnails: bool) -> list[Path]:
    """The data folder's files a backup holds besides the database: the token secret, the TLS
    keys and certificates (data/tls), import reports, and whatever small files a newer Shoebox keeps
    there, generically; never the run-time files, other SQLite files or temporary files (SKIP_*).
    Thumbnails only when asked. Links are not followed."""
    found: list[Path] = []
    for folder, dirs, names in os.walk(data, followlinks=False):
        here = Path(folder)
        top = here == data
        dirs[:] = sorted(d for d in dirs if not (top and d in SKIP_TOP and not (thumbnails and d == "thumbs"))
                         and temp_kind(d, "data") is None)
        for name in sorted(names):
            if top and (name in SKIP_TOP or name == DB_NAME):
                continue
            if name.endswith(SKIP_SUFFIXES) or temp_kind(name, "data") is not None:
                continue
            path = here / name
            if path.is_symlink() or not path.is_file():
                continue
            found.append(path)
    return found


def library_files(library: Path, skip: tuple[Path, ...]) -> list[Path]:
    """Every regular file in the library (photos, videos, sidecars), except hidden temporary
    uploads and anything inside `skip` (the data folder or the destination, if they are in it)."""
    skipped = {os.path.abspath(p) for p in skip}
    found: list[Path] = []
    for folder, dirs, names in os.walk(library, followlinks=False):
        dirs[:] = sorted(d for d in dirs if os.path.abspath(os.path.join(folder, d)) not in skipped)
        for name in sorted(names):
            path = Path(folder) / name
            if temp_kind(name, "library") is not None or path.is_symlink() or not path.is_file():
                continue
            found.append(path)
    return found


def _new_folder(dest: Path, name: str) -> Path:
    """A name not taken yet in dest (`name`, `name-2`, ...)."""
    candidate, n = dest / name, 1
    while candidate.exists():
        n += 1
        candidate = dest / f"{name}-{n}"
    return candidate


def make_backup(*, db_path: Path, data: Path, destination: Path, config_file: Path | None, library: Path | None,
                options: BackupOptions | None = None, kind: str = "full", name: str | None = None,
                cancelled: Callable[[], bool] = lambda: False) -> BackupResult:
    """Write one backup folder into `destination` (which must exist: a USB disk that is not
    mounted must not be filled in its place on the SD card). Atomic: built under a hidden temporary
    name, the manifest written last, then renamed; on any error the temporary folder is removed."""
    options = options or BackupOptions()
    started = time.monotonic()
    destination = Path(destination)
    if not destination.is_dir():
        raise BackupError(f"the backup destination {destination} does not exist or is not a folder "
                          "(is the disk plugged in and mounted?)")
    now = time.time()
    final = _new_folder(destination, name or f"shoebox-backup-{utc_stamp(now)}")
    work = destination / f"{PARTIAL_PREFIX}{final.name}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}"
    work.mkdir(mode=0o700)
    _private(work, 0o700)
    files: dict[str, dict[str, object]] = {}
    total = 0
    try:
        (work / "data").mkdir(mode=0o700)
        version, instance = snapshot_database(db_path, work / "data" / DB_NAME, cancelled=cancelled)
        digest, size = sha256_file(work / "data" / DB_NAME)
        files[f"data/{DB_NAME}"] = {"sha256": digest, "size": size}
        total += size

        def add(src: Path, rel: str) -> None:
            nonlocal total
            if cancelled():
                raise BackupError("the backup was cancelled")
            target = work / rel
            for parent in reversed(target.relative_to(work).parents[:-1]):
                folder = work / parent
                if not folder.exists():
                    folder.mkdir(mode=0o700)
            try:
                with open(src, "rb") as fh:
                    digest, size = copy_hashing(fh, target)
                    copy_times(src, target)
            except FileNotFoundError:  # removed while we walked (a thumbnail replaced): not an error
                return
            files[rel] = {"sha256": digest, "size": size}
            total += size

        if kind == "full":
            for path in data_files(data, thumbnails=options.thumbnails):
                rel = path.relative_to(data)
                add(path, ("thumbs/" + rel.relative_to("thumbs").as_posix()) if rel.parts[0] == "thumbs"
                    else f"data/{rel.as_posix()}")
            if config_file is not None and Path(config_file).is_file():
                add(Path(config_file), f"config/{Path(config_file).name}")
            if options.originals and library is not None and library.is_dir():
                for path in library_files(library, skip=(data, destination)):
                    add(path, f"originals/{path.relative_to(library).as_posix()}")
        manifest = Manifest(shoebox_version=__version__, schema_version=version, created=iso_utc(now),
                            host=socket.gethostname(), instance=instance, files=files,
                            config_file=str(config_file) if config_file else None, data_dir=str(data),
                            library=str(library) if library else None, kind=kind)
        manifest.write(work)
        fsync_dir(work)
        os.rename(work, final)
        fsync_dir(destination)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return BackupResult(path=final, manifest=manifest, seconds=time.monotonic() - started, bytes=total)


# -- which folders are backups, and pruning --------------------------------------------------------


def list_backups(destination: Path, *, pattern: re.Pattern[str] = NAME, instance: str | None | bool = False) -> list[tuple[Path, Manifest]]:
    """The finished Shoebox backups in `destination`, oldest first: folders named like one AND
    holding a manifest that reads as one. `instance` (when not False) keeps only backups of that
    library (several Shoeboxes may share one disk)."""
    found = []
    try:
        entries = list(Path(destination).iterdir())
    except OSError:
        return []
    for entry in entries:
        if not pattern.match(entry.name) or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            manifest = Manifest.read(entry)
        except BackupError:
            continue
        if instance is not False and manifest.instance != instance:
            continue
        found.append((entry, manifest))
    found.sort(key=lambda pair: (pair[1].created, pair[0].name))
    return found


def prune(destination: Path, keep: int, *, pattern: re.Pattern[str] = NAME, instance: str | None | bool = False) -> list[Path]:
    """Remove all but the `keep` newest backups (of `instance`) in `destination`; never anything
    that is not a Shoebox backup folder with a valid manifest. Also removes this module's own
    temporary folders left by a backup that was killed over a day ago. Returns what was removed."""
    removed = []
    backups = list_backups(destination, pattern=pattern, instance=instance)
    for path, _ in backups[:max(0, len(backups) - keep)]:
        shutil.rmtree(path)
        removed.append(path)
        log.info("removed the old backup %s", path)
    try:
        entries = list(Path(destination).iterdir())
    except OSError:
        entries = []
    for entry in entries:
        if entry.name.startswith(PARTIAL_PREFIX) and entry.name.endswith(PARTIAL_SUFFIX) and not entry.is_symlink():
            try:
                if time.time() - entry.stat().st_mtime > STALE_PARTIAL_S:
                    shutil.rmtree(entry)
                    log.info("removed the unfinished backup %s", entry)
            except OSError:
                continue
    return removed


# -- before a migration --------------------------------------------------------------------------------

PRE_MIGRATION_KEEP = 3


def schema_version(db_path: Path) -> int:
    """PRAGMA user_version of a database file (0 for a new, empty one)."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=30)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def pre_migration_backup(db_path: Path, data: Path, shipped: int) -> Path | None:
    """If the database exists and is older than the `shipped` migrations, copy it (with a manifest:
    `shoebox restore` takes it) to <data>/backups/pre-migration-<version>-<time>/ and keep the
    last PRE_MIGRATION_KEEP of them. Nothing to do for a new or an up-to-date database (or a newer
    one: the store refuses that itself). Called with the data folder's lock held."""
    if not db_path.is_file() or db_path.stat().st_size == 0:
        return None
    version = schema_version(db_path)
    if version == 0 or version >= shipped:
        return None
    folder = data / "backups"
    folder.mkdir(mode=0o700, exist_ok=True)
    _private(folder, 0o700)
    result = make_backup(db_path=db_path, data=data, destination=folder, config_file=None, library=None,
                         kind="pre-migration", name=f"pre-migration-{version}-{utc_stamp()}")
    log.warning("the database is at schema version %d and will be updated to %d; a copy of it was saved "
                "first in %s (%.1f s)", version, shipped, result.path, result.seconds)
    prune(folder, PRE_MIGRATION_KEEP, pattern=PRE_MIGRATION)
    return result.path

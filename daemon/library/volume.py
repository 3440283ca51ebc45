"""Is the library folder still the library? The unplugged / empty / swapped-volume guard.

Why a module of its own: every scan (full or partial, from the watcher or the periodic rescan)
and every index job that finds its file gone must ask the same question, and answer it the same
way, before anything is marked offline or any job is given up: a USB drive that browns out leaves
a missing folder or an empty mount point, a NAS share that drops leaves an empty folder, another
drive may be mounted in its place. None of those says anything about the photos.

The answer is judged against what was known *before* the outage, never against what is online
now: a scan that had already (wrongly) marked everything offline must not make the next one think
the library was empty all along. What is known is kept in `meta` by every scan that passed the
guard: the number of media files the store knows (offline ones included), the volume's device
number, and the top-level entries that held them (a marker that survives a reboot which renumbers
devices, and that an empty or foreign volume does not have).
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from daemon.jobs.pool import WorkerPool
from daemon.library.formats import Kind
from daemon.store.db import Database

# How many top-level entries (the most populous) mark the volume.
MARKER_ENTRIES = 64


@dataclass(frozen=True)
class KnownVolume:
    """What the store knew about the library the last time a scan passed the guard."""

    files: int  # media files known, offline or not
    device: int | None  # st_dev of the library folder
    entries: tuple[bytes, ...]  # top-level names that held media files
    sample: tuple[bytes, ...] = ()  # a few known files (the oldest and newest rows)


def _first_part(rel: bytes) -> bytes:
    return rel.split(b"/", 1)[0]


def read_known(conn: sqlite3.Connection) -> KnownVolume:
    """Runs on a reader connection."""
    files = conn.execute("SELECT count(*) FROM files WHERE kind != 'sidecar'").fetchone()[0]
    meta = {r[0]: r[1] for r in conn.execute(
        "SELECT key, value FROM meta WHERE key IN ('library.device', 'library.entries')")}
    device = int(meta["library.device"]) if meta.get("library.device") else None
    if meta.get("library.entries"):
        entries = tuple(os.fsencode(name) for name in json.loads(meta["library.entries"]))
    elif files:
        # a store from before the marker existed: derive it from every known file
        counts: Counter[bytes] = Counter(
            _first_part(bytes(r[0])) for r in conn.execute("SELECT path FROM files WHERE kind != 'sidecar'"))
        entries = tuple(name for name, _ in counts.most_common(MARKER_ENTRIES))
    else:
        entries = ()
    sample = tuple(bytes(r[0]) for order in ("", " DESC") for r in conn.execute(
        f"SELECT path FROM files WHERE kind != 'sidecar' ORDER BY id{order} LIMIT 10"))
    return KnownVolume(files=files, device=device, entries=entries, sample=sample)


def remember(conn: sqlite3.Connection, device: int, media: Iterable[bytes]) -> None:
    """After a full scan passed the guard (runs in the writer): keep the volume's identity.
    `device` is stat'ed by the caller in a worker: the writer never touches the library."""
    counts: Counter[bytes] = Counter(_first_part(rel) for rel in media)
    names = [os.fsdecode(name) for name, _ in counts.most_common(MARKER_ENTRIES)]
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('library.device', ?)",
                 (str(device),))
    if names:  # an empty library has nothing to mark; keep the last marker
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('library.entries', ?)", (json.dumps(names),))


def _has_visible_entries(root: bytes) -> bool:
    with os.scandir(root) as it:
        return any(not e.name.startswith(b".") and e.name != b"lost+found" for e in it)


def judge(root: bytes, known: KnownVolume, media_found: int | None = None) -> str | None:
    """Why the folder at `root` must not be taken for the library right now, or None if it may.

    media_found: media files a full walk just found (None when nothing was walked, or only part).
    Runs in a worker thread: a stat on a dropped share may take long."""
    shown = os.fsdecode(root)
    try:
        st = os.stat(root)
    except FileNotFoundError:
        return f"library folder {shown} does not exist (an unplugged drive or an unmounted share?)"
    except OSError as exc:
        return f"library folder {shown} cannot be read: {exc.strerror or exc} (a dropped share?)"
    if not stat.S_ISDIR(st.st_mode):
        return f"library path {shown} is not a folder"
    if not os.access(root, os.R_OK | os.X_OK):
        return f"library folder {shown} is not readable by this user"
    if not known.files:
        return None  # nothing known yet: whatever is there is the library
    empty = (f"library folder {shown} is empty but {known.files} files were there last time "
             "(an empty mount point?); nothing was marked offline")
    if media_found == 0:
        return empty
    try:
        marked = not known.entries or any(os.path.lexists(os.path.join(root, name)) for name in known.entries)
        if not marked and media_found is None and not _has_visible_entries(root):
            return empty
        if known.device is not None and st.st_dev != known.device:
            # another device: ours after a reboot or a remount only if what we knew is on it
            if not marked or (known.sample and not any(os.path.lexists(os.path.join(root, rel))
                                                       for rel in known.sample)):
                return (f"library folder {shown} is on a different volume than last time and none of the known "
                        "files are on it (another drive mounted there?); nothing was marked offline")
            return None
    except OSError as exc:
        return f"library folder {shown} cannot be read: {exc.strerror or exc} (a dropped share?)"
    return None  # the same volume, reorganised: its top-level folders were renamed


class LibraryVolume:
    """The guard as the scanner and the indexer use it."""

    def __init__(self, db: Database, pool: WorkerPool, root: Path) -> None:
        self.db = db
        self.pool = pool
        self.root = os.fsencode(root)

    async def known(self) -> KnownVolume:
        return await self.db.read(read_known)

    async def problem(self, media_found: int | None = None) -> str | None:
        """Why the library cannot be trusted right now (None: it is there and it is ours)."""
        known = await self.known()
        return await self.pool.run(judge, self.root, known, media_found)


def media_paths(files: Iterable[object]) -> Iterable[bytes]:
    """The relative paths of the media (not sidecar) files of a walk."""
    return (f.rel for f in files if f.kind is not Kind.SIDECAR)  # type: ignore[attr-defined]

"""Free disk space as a state of the daemon, not an error of a file.

Why a module of its own: a full disk is a condition every writer meets at once (the database,
the thumbnails, the event outbox, the job queue's own bookkeeping). Treated as an error it turns
every file into a permanent "no space left" failure, and the failure write itself fails, so the
same jobs run again and again. Treated as a state it is simple: before taking work the job queue
asks `ready()`; a job that meets ENOSPC/EDQUOT (or SQLite's "database or disk is full") reports
it here and stays queued. While paused, one task polls the free space with backoff (near-idle:
one statvfs call every few seconds) and resumes indexing by itself when space is back. Reads
(the API, thumbnails already made) never stop.

The state is published three ways: `status()` (for /api/v1/status and MQTT), a small state file
in the data folder that `shoebox status` reads (written in place into space allocated while
the disk still had room, so it can change even when the disk is full), and the `storage.full` /
`storage.ok` events through `on_change`.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from daemon.timeutil import utcnow

log = logging.getLogger(__name__)

MIB = 1 << 20
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
SQLITE_FULL = 13  # sqlite3 result code: "database or disk is full"
# Resuming needs this much more room than there was when a write failed, so a disk that is
# still full does not flap between paused and running.
RESUME_MARGIN = 1 * MIB
# The state file is this big, allocated at start; later writes overwrite it in place.
STATE_FILE_SIZE = 4096
CHECK_EVERY_S = 0.5  # ready() re-reads the free space at most this often while running


class StorageFull(Exception):
    """A volume the daemon writes to has less free space than it needs (exit code 5)."""

    def __init__(self, volume: str, path: Path, free: int, need: int, reason: str = "") -> None:
        self.volume, self.path, self.free, self.need = volume, Path(path), free, need
        why = f" ({reason})" if reason else ""
        super().__init__(f"the {volume} disk is full: {_mib(free)} MiB free at {path}, "
                         f"{_mib(need)} MiB needed ([index] min_free_mib){why}")


class DataDirUnusable(Exception):
    """The data folder is not a folder, or cannot be written (exit code 6)."""


@dataclass(frozen=True)
class Volume:
    """A folder whose file system must keep `min_free` bytes free for the daemon to write."""

    name: str  # "data", "thumbnails", "library"
    path: Path


def _mib(n: int) -> float:
    return round(n / MIB, 1)


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on path's file system (0 when it is out of
    inodes too: creating a file fails then just the same). The nearest existing parent counts
    for a folder not made yet."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    st = os.statvfs(p)
    if st.f_files and st.f_favail == 0:
        return 0
    return st.f_bavail * st.f_frsize


def is_no_space(exc: BaseException | None) -> bool:
    """True for ENOSPC/EDQUOT and SQLite's SQLITE_FULL, also when wrapped (__cause__/__context__)."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            return True
        if isinstance(exc, sqlite3.Error):
            code = getattr(exc, "sqlite_errorcode", None)
            if code is not None and code & 0xFF == SQLITE_FULL:
                return True
            if "database or disk is full" in str(exc):
                return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def check_data_dir(data: Path) -> None:
    """Make sure the data folder exists, is a folder and can be written; raise DataDirUnusable
    with the reason otherwise (a file in its place, a read-only mount, no permission).
    A full disk raises StorageFull from the caller's free-space check, not here."""
    data = Path(data)
    try:
        data.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise DataDirUnusable(f"the data folder {data} is not a folder") from None
    except OSError as exc:
        if exc.errno in NO_SPACE_ERRNOS:
            raise StorageFull("data", data, 0, 0, "cannot create the data folder") from None
        raise DataDirUnusable(f"cannot create the data folder {data}: {exc.strerror or exc}") from None
    if not data.is_dir():
        raise DataDirUnusable(f"the data folder {data} is not a folder")
    probe = data / f".write-test.{os.getpid()}.tmp"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        if exc.errno in NO_SPACE_ERRNOS:
            raise StorageFull("data", data, free_bytes(data), 0, "cannot create a file") from None
        raise DataDirUnusable(f"cannot write into the data folder {data}: {exc.strerror or exc}") from None


class DiskSpace:
    """Owned by the App as `app.storage`. Not thread-safe: used from the event loop only."""

    def __init__(self, volumes: list[Volume], min_free_mib: int, *, state_file: Path | None = None,
                 on_change: Callable[[str, dict[str, Any]], None] | None = None,
                 poll_first: float = 0.5, poll_max: float = 10.0) -> None:
        self.volumes = volumes
        self.min_free = int(min_free_mib) * MIB
        self.state_file = state_file
        self.on_change = on_change  # (event type, data): "storage.full" / "storage.ok"
        self.poll_first, self.poll_max = poll_first, poll_max
        self.listeners: list[Callable[[], None]] = []  # told when space is back (the job queue wakes)
        self.full: dict[str, Any] | None = None  # set while paused
        self._need_after: dict[str, int] = {}  # volume -> bytes free needed to resume
        self._last_check = 0.0
        self._watcher: asyncio.Task[None] | None = None
        self._state_fd: int | None = None
        self.pauses = 0

    # -- checks ---------------------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self.full is not None

    def short_volume(self) -> tuple[Volume, int] | None:
        """The first volume below the threshold (or below what resuming needs), with its free bytes."""
        for vol in self.volumes:
            try:
                free = free_bytes(vol.path)
            except OSError:
                continue  # a folder that cannot be statted is someone else's error to report
            if free < max(self.min_free, self._need_after.get(vol.name, 0)):
                return vol, free
        return None

    def check_start(self) -> None:
        """Raise StorageFull if a volume is below the threshold (called before start-up writes)."""
        short = self.short_volume()
        if short is not None:
            vol, free = short
            raise StorageFull(vol.name, vol.path, free, self.min_free)

    def ready(self) -> bool:
        """May the queue start more work? Re-reads free space at most every CHECK_EVERY_S."""
        if self.full is not None:
            return False
        now = time.monotonic()
        if now - self._last_check < CHECK_EVERY_S:
            return True
        self._last_check = now
        short = self.short_volume()
        if short is None:
            return True
        vol, free = short
        self._pause(vol, free, f"less than {_mib(self.min_free)} MiB free")
        return False

    def report(self, exc: BaseException, volume: str | None = None) -> None:
        """A write failed for lack of space: pause. The failing volume is the named one, else the
        first one that is now short (else the data volume)."""
        if self.full is not None:
            return
        filename = getattr(exc, "filename", None)
        vol, free = self._guess_volume(volume, os.fsdecode(filename) if isinstance(filename, (str, bytes)) else None)
        self._need_after[vol.name] = free + RESUME_MARGIN
        reason = f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
        self._pause(vol, free, reason)

    def _guess_volume(self, name: str | None, filename: str | None = None) -> tuple[Volume, int]:
        for vol in self.volumes:
            if vol.name == name:
                return vol, _safe_free(vol.path)
        if filename:  # the deepest volume folder holding the file that could not be written
            hits = [v for v in self.volumes if _inside(filename, v.path)]
            if hits:
                vol = max(hits, key=lambda v: len(str(v.path)))
                return vol, _safe_free(vol.path)
        short = self.short_volume()
        if short is not None:
            return short
        # the volume with the least room is the likeliest culprit
        frees = [(_safe_free(v.path), i) for i, v in enumerate(self.volumes)]
        free, i = min(frees)
        return self.volumes[i], free

    # -- state changes --------------------------------------------------------------------------------

    def _pause(self, vol: Volume, free: int, reason: str) -> None:
        self.pauses += 1
        self.full = {"volume": vol.name, "path": str(vol.path), "free_mib": _mib(free),
                     "min_free_mib": _mib(self.min_free), "since": utcnow(), "reason": reason,
                     "_since": time.monotonic()}
        log.warning("indexing paused: the %s disk is full (%s MiB free at %s; %s); reads go on, "
                    "indexing resumes by itself when space is freed", vol.name, _mib(free), vol.path, reason)
        self._write_state()
        self._emit("storage.full", self._public(self.full))
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._wait_for_space(), name="storage-watch")

    def _resume(self) -> None:
        full, self.full = self.full, None
        self._need_after.clear()
        self._last_check = time.monotonic()
        assert full is not None
        paused_s = round(time.monotonic() - full["_since"], 1)
        log.info("space is back on the %s disk after %.1f s: indexing resumes", full["volume"], paused_s)
        self._write_state()
        frees = {v.name: _mib(_safe_free(v.path)) for v in self.volumes}
        self._emit("storage.ok", {"volume": full["volume"], "path": full["path"],
                                  "free_mib": frees.get(full["volume"], 0.0), "paused_s": paused_s})
        for listener in list(self.listeners):
            listener()

    async def _wait_for_space(self) -> None:
        """Poll while paused: first after poll_first seconds, then twice as long each time up to
        poll_max, so a disk that stays full costs a statvfs every few seconds and nothing else."""
        delay = self.poll_first
        while self.full is not None:
            await asyncio.sleep(delay)
            delay = min(self.poll_max, delay * 2)
            try:
                short = self.short_volume()
                if short is None:
                    self._resume()
                    return
                self.full["free_mib"] = _mib(short[1])
            except Exception:  # this task is what ends the pause: it must not die of a surprise
                log.exception("checking the free disk space failed; trying again")

    def _emit(self, type: str, data: dict[str, Any]) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(type, data)
        except Exception:  # an event that cannot be sent must not stop the pause itself
            log.exception("could not announce %s", type)

    @staticmethod
    def _public(full: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in full.items() if not k.startswith("_")}

    def status(self) -> dict[str, Any]:
        """For /api/v1/status and the MQTT state: {"state": "ok"|"full", "indexing_paused", ...}."""
        volumes = [{"name": v.name, "path": str(v.path), "free_mib": _mib(_safe_free(v.path))} for v in self.volumes]
        base: dict[str, Any] = {"state": "full" if self.full else "ok", "indexing_paused": self.full is not None,
                                "min_free_mib": _mib(self.min_free), "volumes": volumes}
        if self.full is not None:
            base.update(self._public(self.full))
        return base

    # -- the state file (read by `shoebox status`) ------------------------------------------------------

    def open_state_file(self) -> None:
        """Allocate the state file now, while there is room, so later writes only overwrite."""
        if self.state_file is None:
            return
        fd = os.open(self.state_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.posix_fallocate(fd, 0, STATE_FILE_SIZE)
        except OSError:
            pass  # not every file system supports it; the write below allocates anyway
        self._state_fd = fd
        self._write_state()

    def close_state_file(self) -> None:
        if self._state_fd is not None:
            os.close(self._state_fd)
            self._state_fd = None
            if self.state_file is not None:
                self.state_file.unlink(missing_ok=True)

    def _write_state(self) -> None:
        if self._state_fd is None:
            return
        doc = {"pid": os.getpid(), "storage": self._public(self.full) if self.full else None}
        blob = json.dumps(doc).encode()[:STATE_FILE_SIZE - 1]
        try:
            os.pwrite(self._state_fd, blob.ljust(STATE_FILE_SIZE - 1) + b"\n", 0)
        except OSError as exc:  # copy-on-write file systems need room even to overwrite
            log.debug("cannot write the storage state file: %s", exc)

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        self.close_state_file()


def read_state_file(path: Path) -> dict[str, Any] | None:
    """The running daemon's storage state as written by DiskSpace (None if there is none)."""
    try:
        text = Path(path).read_text().strip()
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


def _inside(filename: str, folder: Path) -> bool:
    try:
        return Path(os.path.abspath(filename)).is_relative_to(os.path.abspath(folder))
    except ValueError:
        return False


def _safe_free(path: Path) -> int:
    try:
        return free_bytes(path)
    except OSError:
        return 0

"""Writing files that survive a crash: temporary names, renames, flushed folders, and the sweep
of what a killed run left half-written.

A rename survives a power cut only if the folder that holds the new name is flushed too.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries to disk (after renaming a finished file into it). Best effort:
    some file systems (network shares) refuse to fsync a folder, and that must not fail the write."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- temporary files: one registry of every name the daemon writes before a rename ---------------
#
# Why one registry: crash recovery must find every kind of half-written file, and a writer that
# invents its own temporary name would leave litter no sweep knows about. Writers take their
# names from `temp_name` (or, for uploads and imports, daemon.library.importer.temp_path, whose
# names the "library" pattern below matches); tests/unit/test_durable.py checks each writer's
# names against this list.


@dataclass(frozen=True)
class TempKind:
    """A family of temporary names: where it lives, what it is, and its name pattern."""

    where: str  # "data" (anywhere below the data folder) or "library" (anywhere in the library)
    what: str
    pattern: re.Pattern[str]
    folder: bool = False  # a temporary folder (removed with its contents)


TEMP_KINDS: tuple[TempKind, ...] = (
    TempKind("data", "interrupted writes of thumbnails, motion videos, import reports and the places database "
             "(`.<final name>.<random>.tmp`, with SQLite's -journal/-wal/-shm beside it)",
             re.compile(r"^\..+\.tmp(-journal|-wal|-shm)?$")),
    TempKind("data", "folders of video poster frames (`.poster-<random>`)",
             re.compile(r"^\.poster-[A-Za-z0-9_]+$"), folder=True),
    TempKind("data", "folders of pinned links to library files being read (`pins/pin-<random>`, daemon.library.gate)",
             re.compile(r"^pin-[a-z0-9_]{8}$"), folder=True),
    TempKind("library", "uploads and imports still being copied (`.shoebox-<kind>-<random>.part<.ext>`)",
             re.compile(r"^\.shoebox-[A-Za-z0-9_]+-[0-9a-f]{16}\.part(\.[^/]*)?$")),
)


def temp_name(dest: Path) -> Path:
    """The temporary name to write `dest` under before renaming it into place (same folder, so
    the rename is atomic; hidden, so the scanner never indexes it; in TEMP_KINDS, so a crash
    leaves nothing the next start does not sweep)."""
    dest = Path(dest)
    return dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp")


def temp_kind(name: str, where: str) -> TempKind | None:
    """The registered kind a file or folder name belongs to, if any."""
    for kind in TEMP_KINDS:
        if kind.where == where and kind.pattern.match(name):
            return kind
    return None


def sweep_temp_files(root: Path, where: str, *, older_than: float | None = None,
                     skip: tuple[Path, ...] = ()) -> int:
    """Remove every registered temporary file and folder below `root` ("data" or "library"
    patterns). Only safe while nothing else writes them: the App calls it after an unclean stop,
    holding the data folder's lock; `older_than` (a time.time()) spares files this run made.
    Links are not followed; folders in `skip` are not entered. Returns how many were removed."""
    removed = 0
    skip_set = {os.path.abspath(p) for p in skip}
    for folder, dirs, names in os.walk(root, followlinks=False):
        keep_dirs = []
        for d in dirs:
            path = os.path.join(folder, d)
            kind = temp_kind(d, where)
            if kind is not None and kind.folder and _old(path, older_than):
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
            elif os.path.abspath(path) not in skip_set:
                keep_dirs.append(d)
        dirs[:] = keep_dirs
        for name in names:
            kind = temp_kind(name, where)
            if kind is None or kind.folder:
                continue
            path = os.path.join(folder, name)
            if not _old(path, older_than):
                continue
            try:
                os.unlink(path)
                removed += 1
            except FileNotFoundError:
                pass
            except OSError as exc:  # a read-only library: say so, sweep the rest
                log.warning("cannot remove the temporary file %s: %s", path, exc.strerror or exc)
    return removed


def _old(path: str, older_than: float | None) -> bool:
    if older_than is None:
        return True
    try:
        return os.lstat(path).st_mtime < older_than
    except OSError:
        return False

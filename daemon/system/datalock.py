"""The data folder's lock: one Shoebox process per data folder.

Two daemons on one data folder would run the same jobs twice and fight over the database; a
restore under a running daemon would pull its files away. So whoever uses the folder takes an
exclusive flock on `<data>/shoebox.lock` (and writes its pid there for the message the next one
gets); the kernel drops it when the process ends, however it ends (kill -9 included), so a lock is
never stale. Owned here; the App, `shoebox restore` and the command line's "is a daemon running?"
all go through these functions.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "shoebox.lock"


class DataDirBusy(Exception):
    """Another Shoebox process holds the data folder (its pid is in the message)."""


def take(data: Path) -> int:
    """Lock `data` for this process; returns the open descriptor that holds the lock (keep it open
    for as long as the lock is wanted). Raises DataDirBusy when another process holds it."""
    fd = os.open(Path(data) / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        raise DataDirBusy(f"another shoebox process (pid {other or '?'}) is using {data}") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def held(data: Path) -> bool:
    """Whether some process holds the lock now (read-only: never creates the file)."""
    try:
        fd = os.open(Path(data) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False

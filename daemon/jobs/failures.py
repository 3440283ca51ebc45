"""Transient or permanent: what a failed job means for the file it was about.

Why a module of its own: "the file could not be read" has two very different meanings. A file
whose drive browned out, whose NAS share dropped, or whose own disk (our data disk) is full was
never looked at: that is a state to wait out, and the job must run again by itself when the
condition clears. A file that was read and found bad (corrupt, truncated, unsupported, a
decompression bomb, refused by the library gate) is a verdict: it is recorded as an error, and
only tried again when the file changes, when the software that judged it changes
(`judging_version`), or when the user asks (`shoebox index --retry-errors`).

`classify(exc)` is the one place that tells the two apart, so the job queue, the indexer and the
free-space guard (daemon.system.diskspace) agree. It looks through wrapped exceptions
(`raise DecodeError(...) from exc`), because decoders report an unreadable file as their own
error type with the OSError as its cause.
"""

from __future__ import annotations

import errno
import sqlite3
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

# Scopes of a transient failure, i.e. what has to come back before the job can succeed:
#   gone    - the file itself is not there (ENOENT): the volume may be fine (a deleted file) or not
#   file    - reading failed the way a dropping volume fails (EIO, ESTALE, ENODEV, ...)
#   library - the library root is missing, empty or another volume (decided by the indexer)
#   storage - our own disk is full (ENOSPC, EDQUOT, SQLite's "database or disk is full")
Scope = Literal["gone", "file", "library", "storage"]

GONE_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR})
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# What a read returns while a USB disk browns out, a share drops or a mount goes stale.
VOLUME_ERRNOS = frozenset({
    errno.EIO, errno.ENODEV, errno.ENXIO, errno.ESTALE, errno.ENOMEDIUM, errno.ENOTCONN,
    errno.EHOSTDOWN, errno.EHOSTUNREACH, errno.ENETDOWN, errno.ENETUNREACH, errno.ENETRESET,
    errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNABORTED, errno.ECONNREFUSED, errno.EREMOTEIO,
    errno.EAGAIN, errno.EINTR, errno.EBUSY,
})
SQLITE_FULL = 13

# Backoff for a transient failure: BASE_S, doubled per wait, capped per scope. A missing library
# is cheap to probe (one stat), so it is probed more often than a single failing file.
BASE_S = 5.0
CAP_S: dict[str, float] = {"library": 300.0, "storage": 300.0, "gone": 3600.0, "file": 3600.0}
# A single file that keeps failing like a dropping volume while the volume itself looks fine (a
# bad sector, most likely) becomes a permanent error after this many waits (about 3.5 hours).
FILE_WAIT_LIMIT = 12


class LibraryUnavailable(Exception):
    """The library root is missing, empty or another volume: every library job must wait."""


@dataclass(frozen=True)
class Transient:
    """Not a verdict on the file: try again when the condition clears."""

    scope: Scope
    reason: str


@dataclass(frozen=True)
class Permanent:
    """The file was read and is bad (or may not be read): record it."""

    reason: str


def _chain(exc: BaseException | None, limit: int = 8):  # type: ignore[no-untyped-def]
    seen = 0
    while exc is not None and seen < limit:
        yield exc
        exc = exc.__cause__ or exc.__context__
        seen += 1


def describe(exc: BaseException) -> str:
    """The reason a person reads: the exception's own message, or its type when it has none."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def classify(exc: BaseException) -> Transient | Permanent:
    """Transient (with its scope) or Permanent, looking through wrapped causes."""
    for link in _chain(exc):
        if isinstance(link, LibraryUnavailable):
            return Transient("library", str(link))
        if isinstance(link, sqlite3.Error):
            code = getattr(link, "sqlite_errorcode", None)
            if (code is not None and code & 0xFF == SQLITE_FULL) or "database or disk is full" in str(link):
                return Transient("storage", str(link))
        if isinstance(link, OSError) and link.errno is not None:
            if link.errno in STORAGE_ERRNOS:
                return Transient("storage", describe(link))
            if link.errno in GONE_ERRNOS:
                return Transient("gone", describe(link))
            if link.errno in VOLUME_ERRNOS:
                return Transient("file", describe(link))
            # EACCES, EISDIR, ELOOP, ...: something about the file itself; a verdict
            break
    return Permanent(describe(exc))


def is_transient(exc: BaseException) -> bool:
    return isinstance(classify(exc), Transient)


def backoff_s(scope: str, waits: int) -> float:
    """Seconds to wait before the `waits`-th retry (1 = the first) of a transient failure."""
    return min(CAP_S.get(scope, 3600.0), BASE_S * 2 ** max(0, waits - 1))


@lru_cache(maxsize=1)
def judging_version() -> str:
    """The software that gives a file its verdict: Shoebox and the decoders it reads with. A
    permanent error recorded by another version is tried again (an upgrade may read it)."""
    from PIL import __version__ as pillow

    from daemon import __version__

    parts = [f"shoebox {__version__}", f"Pillow {pillow}"]
    try:
        import pillow_heif

        parts.append(f"pillow-heif {pillow_heif.__version__}")
    except Exception:  # noqa: BLE001 - an optional plugin
        pass
    return ", ".join(parts)


__all__ = ["Transient", "Permanent", "LibraryUnavailable", "classify", "is_transient", "backoff_s",
           "judging_version", "describe", "FILE_WAIT_LIMIT"]

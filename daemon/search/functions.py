"""SQL functions the compiled queries call, registered per connection by `register_functions`.

Why Python functions: SQLite compares text byte-wise or ASCII-case-insensitively, but people
type "zurich" for Zürich; great-circle distance needs trigonometry that not every SQLite build
ships; and the perceptual-hash "similar" order needs a popcount. Each is deterministic, so
SQLite may cache and reorder calls.

They are registered once per connection, when it opens (daemon.store.db.StoreConnection): SQLite
refuses to (re)define a function while any statement on the connection is still running, so a
search run inside another query's loop (the album list counting each smart album) failed when
every search registered them again. `ensure_functions` only registers on a connection that
lacks them (one opened by hand, as tests and tools do).
"""

from __future__ import annotations

import math
import sqlite3

from daemon.places.index import EARTH_RADIUS_KM
from daemon.search.text import fold


def _fold(text: object) -> str | None:
    return None if text is None else fold(str(text))


def _km(lat1: float | None, lng1: float | None, lat2: float | None, lng2: float | None) -> float | None:
    if lat1 is None or lng1 is None or lat2 is None or lng2 is None:
        return None
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lng2 - lng1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _hamming(a: str | None, b: str | int | None) -> int | None:
    """Bits that differ between a phash (16 hex digits) and another phash or its integer."""
    if a is None or b is None:
        return None
    try:
        x = int(a, 16)
        y = b if isinstance(b, int) else int(b, 16)
    except (TypeError, ValueError):
        return None
    return (x ^ y).bit_count()


def register_functions(conn: sqlite3.Connection) -> None:
    """sb_fold(text), sb_km(lat1, lng1, lat2, lng2), sb_hamming(phash, phash)."""
    conn.create_function("sb_fold", 1, _fold, deterministic=True)
    conn.create_function("sb_km", 4, _km, deterministic=True)
    conn.create_function("sb_hamming", 2, _hamming, deterministic=True)


def ensure_functions(conn: sqlite3.Connection) -> None:
    """Register the functions unless `conn` already has them (a store connection always has)."""
    if getattr(conn, "functions_registered", False):
        return
    try:
        conn.execute("SELECT sb_fold(NULL), sb_km(NULL, NULL, NULL, NULL), sb_hamming(NULL, NULL)").fetchone()
    except sqlite3.OperationalError:
        register_functions(conn)

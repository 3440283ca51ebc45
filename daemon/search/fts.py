"""Upkeep of the full-text index photos_fts (migration 0003).

Triggers keep it current on every write, so normal code never calls anything here. These are
for the rare cases: a bulk load that drops the triggers for speed (the benchmark's generator, a
future importer), and a check/repair after restoring an old backup or a crash of a tool that
wrote with triggers disabled.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import Iterator


def rebuild_search_index(conn: sqlite3.Connection) -> None:
    """Re-index every photo from scratch (minutes at a million photos; run inside a write transaction)."""
    conn.execute("INSERT INTO photos_fts (photos_fts) VALUES ('rebuild')")


def verify_search_index(conn: sqlite3.Connection) -> bool:
    """True when the index holds exactly the words of every photo as they are now."""
    try:
        conn.execute("INSERT INTO photos_fts (photos_fts, rank) VALUES ('integrity-check', 1)")
    except sqlite3.DatabaseError as exc:
        if "malformed" in str(exc) or "corrupt" in str(exc):
            return False
        raise
    return True


def optimize_search_index(conn: sqlite3.Connection) -> None:
    """Merge the index's segments (smaller and faster after a big index run; a few seconds)."""
    conn.execute("INSERT INTO photos_fts (photos_fts) VALUES ('optimize')")


@contextmanager
def triggers_suspended(conn: sqlite3.Connection) -> Iterator[None]:
    """For bulk loads only: drop the search triggers, and on leaving recreate them and rebuild the
    index once, instead of re-indexing a photo for each of its rows as they are inserted."""
    saved = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'search\\_%' ESCAPE '\\'").fetchall()
    for name, _ in saved:
        conn.execute(f'DROP TRIGGER "{name}"')
    try:
        yield
    finally:
        for _, sql in saved:
            conn.execute(sql)
        rebuild_search_index(conn)

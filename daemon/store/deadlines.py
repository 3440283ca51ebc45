"""Deadlines for SQLite statements: how a query is held to a time budget.

SQLite calls a connection's progress handler every few thousand virtual-machine steps and stops
the running statement (sqlite3.OperationalError "interrupted") when it answers true. A connection
has only one handler, but a search is a query inside a budget (the whole search) inside another
(an album list counting many smart albums), with its own short budget for one plan (the ordered
index walk). So deadlines nest: a connection that carries a `deadlines` list (the store's
StoreConnection) keeps every deadline set on it and the earliest one holds; on any other
connection the innermost replaces the rest while it lasts.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from typing import Callable, Iterator

#: Virtual-machine steps between two looks at the clock while a deadline is set: well under a
#: millisecond of work, and cheap enough (one Python call) not to slow the query measurably.
PROGRESS_STEPS = 1000


@contextmanager
def deadline(conn: sqlite3.Connection, seconds: float) -> Iterator[Callable[[], bool]]:
    """Interrupt whatever `conn` runs once `seconds` have passed. Yields a function telling
    whether this deadline has passed (to tell it from an outer one)."""
    until = time.perf_counter() + seconds
    stack: list[float] = getattr(conn, "deadlines", None)
    if stack is None:
        stack = []
    stack.append(until)
    if len(stack) == 1:
        conn.set_progress_handler(lambda: int(time.perf_counter() > min(stack)), PROGRESS_STEPS)
    try:
        yield lambda: time.perf_counter() > until
    finally:
        stack.remove(until)
        if not stack:
            conn.set_progress_handler(None, 0)


def deadline_passed(conn: sqlite3.Connection) -> bool:
    """True when a deadline still set on `conn` has passed: an interrupted statement was then
    stopped for time, and the caller should give up rather than try another way."""
    return any(time.perf_counter() > d for d in getattr(conn, "deadlines", ()))

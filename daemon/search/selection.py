"""Every photo a query selects, for commands that act on a selection (`shoebox tag --rerun QUERY`)."""

from __future__ import annotations

import sqlite3

from daemon.search.engine import MAX_LIMIT, search


def select_ids(conn: sqlite3.Connection, q: str) -> list[int]:
    """Row ids of every photo `q` matches (the search's own rules: archived and private photos only
    when the query asks for them); an empty query selects every indexed photo, archived ones too."""
    if not q.strip():
        return [r[0] for r in conn.execute("SELECT id FROM photos WHERE primary_file_id IS NOT NULL ORDER BY id")]
    ids: list[int] = []
    cursor: str | None = None
    while True:
        page = search(conn, q, order="oldest", limit=MAX_LIMIT, cursor=cursor)
        ids += page.ids
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor

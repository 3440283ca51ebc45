"""Reading photos for the API: the small form for grids and the full form of one photo.

Which photos make a page (and the cursor to the next) is the search engine's job
(daemon.search.search); this module turns its ids into what the API answers.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from daemon.store.photos import attach_tags, photo_dict

SUMMARY_COLUMNS = ("uid", "type", "taken_at", "taken_offset", "title", "width", "height", "thumb_key",
                   "placeholder", "main_color", "duration", "rating", "favorite", "private", "archived",
                   "offline", "added_at")
_FLAGS = ("favorite", "private", "archived", "offline")


def summary(row: sqlite3.Row) -> dict[str, Any]:
    """The small form of a photo for grids: enough to lay out and show a thumbnail."""
    d = {name: row[name] for name in SUMMARY_COLUMNS}
    d["id"] = d.pop("uid")
    for flag in _FLAGS:
        d[flag] = bool(d[flag])
    return d


def summaries_by_id(conn: sqlite3.Connection, ids: list[int]) -> list[dict[str, Any]]:
    """Summaries of these photo row ids, in the order given (a search result page)."""
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    rows = {r["id"]: r for r in conn.execute(
        f"SELECT {', '.join(SUMMARY_COLUMNS)}, id FROM photos WHERE id IN ({marks})", ids)}
    return [summary(rows[i]) for i in ids if i in rows]


def photo_row(conn: sqlite3.Connection, uid: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM photos WHERE uid = ? AND primary_file_id IS NOT NULL", (uid,)).fetchone()


def photo_files(conn: sqlite3.Connection, photo_id: int) -> list[sqlite3.Row]:
    """The photo's files in a stable order: the index in this list is the {index} of /files/{index}."""
    return conn.execute("SELECT * FROM files WHERE photo_id = ? ORDER BY id", (photo_id,)).fetchall()


def photo_detail(conn: sqlite3.Connection, uid: str) -> dict[str, Any] | None:
    """Everything about one photo: metadata, files, labels, faces, place and albums."""
    row = photo_row(conn, uid)
    if row is None:
        return None
    files = photo_files(conn, row["id"])
    d = photo_dict(row, files)
    for i, f in enumerate(d["files"]):
        f["index"] = i
    attach_tags(conn, {row["id"]: d})
    d["albums"] = [{"id": a["uid"], "title": a["title"], "type": a["type"]} for a in conn.execute(
        "SELECT a.uid, a.title, a.type FROM album_photos ap JOIN albums a ON a.id = ap.album_id"
        " WHERE ap.photo_id = ? ORDER BY a.title COLLATE NOCASE", (row["id"],))]
    return d

"""Reading photos for the API: pages with a cursor, and one photo with everything about it.

Why cursors and not offsets: an offset page (LIMIT 50 OFFSET 50000) makes SQLite walk past
every skipped row, and a photo added while someone scrolls shifts every later page by one. A
cursor names the last row seen (its sort key and id), so the next page starts right after it
with an index seek, and a page never repeats or skips a photo.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from daemon.store.photos import attach_tags, photo_dict

# order -> (sort key expression, direction)
ORDERS: dict[str, tuple[str, str]] = {
    "newest": ("coalesce(taken_at, '')", "DESC"),
    "oldest": ("coalesce(taken_at, '')", "ASC"),
    "added": ("added_at", "DESC"),
}

SUMMARY_COLUMNS = ("uid", "type", "taken_at", "taken_offset", "title", "width", "height", "thumb_key",
                   "placeholder", "main_color", "duration", "rating", "favorite", "private", "archived",
                   "offline", "added_at")
_FLAGS = ("favorite", "private", "archived", "offline")


class CursorError(ValueError):
    """A cursor that this server did not make (or made for another order)."""


@dataclass(frozen=True)
class Page:
    photos: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(order: str, key: Any, photo_id: int) -> str:
    raw = json.dumps([order, key, photo_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, order: str) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        got_order, key, photo_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise CursorError("cursor is not one this server gave out") from None
    if got_order != order:
        raise CursorError(f"cursor was made for order {got_order!r}, not {order!r}")
    if not isinstance(photo_id, int) or not isinstance(key, (str, int, float)):
        raise CursorError("cursor is not one this server gave out")
    return key, photo_id


def summary(row: sqlite3.Row) -> dict[str, Any]:
    """The small form of a photo for grids: enough to lay out and show a thumbnail."""
    d = {name: row[name] for name in SUMMARY_COLUMNS}
    d["id"] = d.pop("uid")
    for flag in _FLAGS:
        d[flag] = bool(d[flag])
    return d


def list_photos(conn: sqlite3.Connection, *, order: str = "newest", cursor: str | None = None,
                limit: int = 100, archived: bool = False) -> Page:
    """One page of indexed photos in `order`, after `cursor`; archived ones only when asked."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; allowed: {', '.join(ORDERS)}")
    expr, direction = ORDERS[order]
    where = ["primary_file_id IS NOT NULL", f"archived = {1 if archived else 0}"]
    params: list[Any] = []
    if cursor:
        key, last_id = decode_cursor(cursor, order)
        cmp = "<" if direction == "DESC" else ">"
        where.append(f"({expr}, id) {cmp} (?, ?)")
        params += [key, last_id]
    sql = (f"SELECT {', '.join(SUMMARY_COLUMNS)}, id, {expr} AS sort_key FROM photos WHERE {' AND '.join(where)}"
           f" ORDER BY {expr} {direction}, id {direction} LIMIT ?")
    rows = conn.execute(sql, (*params, limit + 1)).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(order, rows[-1]["sort_key"], rows[-1]["id"]) if more and rows else None
    return Page([summary(r) for r in rows], next_cursor)


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

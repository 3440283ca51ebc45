"""Albums as users shape them: hand-made albums of chosen photos in a chosen order, and smart
albums that are a saved search.

Every function takes a sqlite3 connection and is meant to run whole inside one `db.write` (or
`db.read` for the reading ones). Photos are never deleted through an album: removing a photo or
deleting the album only removes rows of album_photos.

Order: album_photos.position is REAL so that moving one photo between two others writes one row
(the midpoint of its neighbours). After about 50 moves into the same gap the midpoints run out of
precision; then the album's positions are renumbered 1, 2, 3... once and the move is done again.

Smart albums keep their query (the search language) and are checked with daemon.search.parse
when saved, so a typo answers 400 then instead of an empty album later. Their photos are the
query's results; the same query also answers `album:<id>` in a search (daemon.search.compiler).

Every album has an owner (albums.owner, the user who made it; NULL: only admins may change it).
Users change and delete only their own albums, admins any (`may_edit`); everyone who may read
sees every album, with its owner's name.
A query naming other smart albums is also compiled when saved, so one that would expand too far
(daemon.search.compiler's bounds) is refused then, with the reason.

Listing albums counts every smart album with a search; the whole list gets the connection's
query budget (`[search] max_seconds`) once, not per album, so a hundred expensive smart albums
cannot make one list take a hundred budgets. A smart album not counted within it answers
`photo_count: null` (and no cover) instead of failing the list.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import sqlite3
import time
from contextlib import nullcontext
from typing import Any, Iterable

from daemon.search import QueryTooExpensive, SearchError, compile, parse, search
from daemon.store.deadlines import deadline
from daemon.store.photo_pages import SUMMARY_COLUMNS, summaries_by_id, summary
from daemon.timeutil import utcnow

MAX_TITLE = 200
MAX_DESCRIPTION = 20_000
SORT_ORDERS = ("position", "newest", "oldest", "added")
#: Smallest gap between two positions before an album is renumbered.
MIN_GAP = 1e-9
VISIBLE = "p.primary_file_id IS NOT NULL AND p.archived = 0 AND p.private = 0"


class AlbumError(ValueError):
    """An album request that cannot be done. `status` 404 for an unknown album or photo, 400 for a
    bad request; `field` names the input at fault."""

    def __init__(self, message: str, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.field = status, field


def _title(title: str) -> str:
    title = " ".join(str(title).split())
    if not title:
        raise AlbumError("an album needs a title", field="title")
    if len(title) > MAX_TITLE:
        raise AlbumError(f"an album title may have at most {MAX_TITLE} characters", field="title")
    return title


def check_query(query: str, conn: sqlite3.Connection | None = None) -> str:
    """A smart album's query, checked by the search parser (and with `conn`, compiled, so albums
    it names that expand too far are refused now): AlbumError naming the bad filter."""
    query = str(query).strip()
    if not query:
        raise AlbumError("a smart album needs a query (the search language, e.g. label:cat year:2023)",
                         field="query")
    try:
        parsed = parse(query)
        if conn is not None:
            compile(parsed, conn=conn)
    except SearchError as exc:
        raise AlbumError(f"bad query: {exc.message}", field=f"query.{exc.key}" if exc.key else "query") from None
    return query


def album_row(conn: sqlite3.Connection, uid: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM albums WHERE uid = ?", (uid,)).fetchone()
    if row is None:
        raise AlbumError(f"no album {uid!r}", 404)
    return row


def _photo_ids(conn: sqlite3.Connection, uids: Iterable[str]) -> tuple[dict[str, int], list[str]]:
    """(id by uid, missing uids) for photos that exist (indexed)."""
    wanted = list(dict.fromkeys(uids))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for r in conn.execute(f"SELECT uid, id FROM photos WHERE uid IN ({marks}) AND primary_file_id IS NOT NULL",
                              chunk):
            found[r["uid"]] = int(r["id"])
    in_order = {u: found[u] for u in wanted if u in found}  # the order asked for, not the database's
    return in_order, [u for u in wanted if u not in found]


def _touch(conn: sqlite3.Connection, album_id: int) -> None:
    conn.execute("UPDATE albums SET updated_at = ? WHERE id = ?", (utcnow(), album_id))


# -- reading ------------------------------------------------------------------------------------------


def _count_and_first(conn: sqlite3.Connection, row: sqlite3.Row,
                     until: float | None = None) -> tuple[int | None, int | None]:
    """(photo count, first photo id); for a smart album a search, within `until` (perf_counter
    time) if given: (None, None) when it could not be counted in time."""
    if row["type"] == "smart":
        left = None if until is None else until - time.perf_counter()
        if left is not None and left <= 0:
            return None, None
        try:
            with deadline(conn, left) if left is not None else nullcontext():
                page = search(conn, row["query"], limit=1, count=True)
        except QueryTooExpensive:
            return None, None
        except SearchError:  # saved by an older version with a filter this one cannot read
            return 0, None
        return int(page.total or 0), (page.ids[0] if page.ids else None)
    count = conn.execute(f"SELECT count(*) FROM album_photos ap JOIN photos p ON p.id = ap.photo_id"
                         f" WHERE ap.album_id = ? AND {VISIBLE}", (row["id"],)).fetchone()[0]
    first = conn.execute(f"SELECT ap.photo_id FROM album_photos ap JOIN photos p ON p.id = ap.photo_id"
                         f" WHERE ap.album_id = ? AND {VISIBLE} ORDER BY ap.position, ap.photo_id LIMIT 1",
                         (row["id"],)).fetchone()
    return int(count), (int(first[0]) if first else None)


def album_dict(conn: sqlite3.Connection, row: sqlite3.Row, *, until: float | None = None) -> dict[str, Any]:
    """The public shape of an album: its fields, photo count and cover photo (the chosen one, else
    the first photo shown). A smart album's count is null when it cannot be had by `until`."""
    count, first = _count_and_first(conn, row, until)
    cover_id = row["cover_photo_id"] or first
    covers = summaries_by_id(conn, [cover_id]) if cover_id else []
    return {
        "id": row["uid"], "type": row["type"], "title": row["title"], "description": row["description"],
        "query": row["query"], "sort_order": row["sort_order"], "favorite": bool(row["favorite"]),
        "private": bool(row["private"]), "photo_count": count, "cover": covers[0] if covers else None,
        "cover_chosen": row["cover_photo_id"] is not None,
        "created_at": row["created_at"], "updated_at": row["updated_at"], "owner": owner_name(conn, row),
    }


def owner_name(conn: sqlite3.Connection, row: sqlite3.Row) -> str | None:
    found = conn.execute("SELECT name FROM users WHERE id = ?", (row["owner"],)).fetchone() if row["owner"] else None
    return found[0] if found else None


def may_edit(row: sqlite3.Row, user_id: int, is_admin: bool) -> bool:
    """Admins change any album; everyone else only albums they own (an album without an owner,
    made before owners existed and with no admin then, is admin-only)."""
    return is_admin or (row["owner"] is not None and row["owner"] == user_id)


def list_albums(conn: sqlite3.Connection, kind: str | None = None) -> list[dict[str, Any]]:
    """Every album (or of one type), by title; the smart albums counted within one query budget."""
    sql = "SELECT * FROM albums" + (" WHERE type = ?" if kind else "") + " ORDER BY title COLLATE NOCASE, id"
    rows = conn.execute(sql, (kind,) if kind else ()).fetchall()
    budget = getattr(conn, "query_budget", None)
    until = time.perf_counter() + budget if budget else None
    return [album_dict(conn, r, until=until) for r in rows]


def _encode_cursor(position: float, photo_id: int) -> str:
    raw = json.dumps(["ap", position, photo_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tag, position, photo_id = json.loads(raw)
        if tag != "ap" or not isinstance(position, (int, float)) or not isinstance(photo_id, int):
            raise ValueError
        return float(position), photo_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise AlbumError("bad cursor: it belongs to another album or order (start again from the first page)",
                         field="cursor") from None


def album_photos(conn: sqlite3.Connection, row: sqlite3.Row, *, cursor: str | None = None,
                 limit: int = 100) -> tuple[list[dict[str, Any]], str | None]:
    """One page of an album's photos (archived and private ones left out, as in every normal view)
    and the cursor to the next page (None at the end).

    Hand-made albums in their own order page by (position, photo id); any other order, and every
    smart album, is a search (`album:<id>` or the album's query), paged by the search's cursor."""
    order = row["sort_order"]
    if row["type"] == "smart" or order != "position":
        q = row["query"] if row["type"] == "smart" else f"album:{row['uid']}"
        page = search(conn, q, order=order if order != "position" else "newest", limit=limit, cursor=cursor)
        return summaries_by_id(conn, page.ids), page.next_cursor
    after = _decode_cursor(cursor) if cursor else (float("-inf"), -1)
    rows = conn.execute(
        f"SELECT ap.position, {', '.join('p.' + c for c in SUMMARY_COLUMNS)}, p.id FROM album_photos ap"
        f" JOIN photos p ON p.id = ap.photo_id WHERE ap.album_id = ? AND {VISIBLE}"
        f" AND (ap.position > ? OR (ap.position = ? AND ap.photo_id > ?))"
        f" ORDER BY ap.position, ap.photo_id LIMIT ?",
        (row["id"], after[0], after[0], after[1], limit + 1)).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _encode_cursor(rows[-1]["position"], rows[-1]["id"]) if more and rows else None
    return [summary(r) for r in rows], next_cursor


# -- changing -------------------------------------------------------------------------------------------


def create_album(conn: sqlite3.Connection, title: str, *, description: str | None = None,
                 query: str | None = None, photo_uids: Iterable[str] = (), owner: int | None = None) -> sqlite3.Row:
    """A new album, owned by the user id `owner`; a smart one when `query` is given. Returns its row."""
    title = _title(title)
    kind = "album"
    if query is not None:
        query = check_query(query, conn)
        kind = "smart"
    uids = list(photo_uids)
    if uids and kind == "smart":
        raise AlbumError("a smart album's photos come from its query; it cannot be given photos", field="photos")
    now = utcnow()
    cur = conn.execute(
        "INSERT INTO albums (uid, type, title, description, query, sort_order, created_at, updated_at, owner)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ("a" + secrets.token_hex(8), kind, title, description, query, "newest" if kind == "smart" else "position",
         now, now, owner))
    row = conn.execute("SELECT * FROM albums WHERE id = ?", (cur.lastrowid,)).fetchone()
    if uids:
        add_photos(conn, row["uid"], uids)
        row = conn.execute("SELECT * FROM albums WHERE id = ?", (cur.lastrowid,)).fetchone()
    return row


def update_album(conn: sqlite3.Connection, uid: str, changes: dict[str, Any]) -> tuple[sqlite3.Row, list[str]]:
    """Change title, description, cover (a photo uid, or None for the first photo), sort_order,
    favorite, private, or a smart album's query. Returns the row and the names of what changed."""
    row = album_row(conn, uid)
    sets: dict[str, Any] = {}
    if "title" in changes:
        sets["title"] = _title(changes["title"])
    if "description" in changes:
        text = changes["description"]
        sets["description"] = text.strip() or None if text is not None else None
    if "query" in changes:
        if row["type"] != "smart":
            raise AlbumError("only a smart album has a query", field="query")
        sets["query"] = check_query(changes["query"], conn)
    if "sort_order" in changes:
        order = changes["sort_order"]
        if order not in SORT_ORDERS:
            raise AlbumError(f"unknown sort_order {order!r}; one of {', '.join(SORT_ORDERS)}", field="sort_order")
        if order == "position" and row["type"] == "smart":
            raise AlbumError("a smart album has no hand-made order; use newest, oldest or added", field="sort_order")
        sets["sort_order"] = order
    for flag in ("favorite", "private"):
        if flag in changes:
            sets[flag] = int(bool(changes[flag]))
    if "cover" in changes:
        cover = changes["cover"]
        if cover is None:
            sets["cover_photo_id"] = None
        else:
            found, _ = _photo_ids(conn, [cover])
            if not found:
                raise AlbumError(f"no photo {cover!r}", field="cover")
            photo_id = found[cover]
            if row["type"] == "album" and conn.execute(
                    "SELECT 1 FROM album_photos WHERE album_id = ? AND photo_id = ?", (row["id"], photo_id)).fetchone() is None:
                raise AlbumError(f"photo {cover!r} is not in this album; add it first", field="cover")
            sets["cover_photo_id"] = photo_id
    changed = [k for k, v in sets.items() if row[k] != v]
    if changed:
        sets["updated_at"] = utcnow()
        conn.execute(f"UPDATE albums SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                     (*sets.values(), row["id"]))
    return album_row(conn, uid), ["cover" if c == "cover_photo_id" else c for c in changed]


def delete_album(conn: sqlite3.Connection, uid: str) -> sqlite3.Row:
    """Delete the album; its photos stay in the library (only album_photos rows go)."""
    row = album_row(conn, uid)
    conn.execute("DELETE FROM albums WHERE id = ?", (row["id"],))
    return row


def _hand_made(row: sqlite3.Row) -> None:
    if row["type"] != "album":
        raise AlbumError("a smart album's photos come from its query; change the query instead", field="ids")


def add_photos(conn: sqlite3.Connection, uid: str, photo_uids: Iterable[str]) -> dict[str, Any]:
    """Append photos at the end of the album, in the order given; ones already in it stay where they are."""
    row = album_row(conn, uid)
    _hand_made(row)
    found, missing = _photo_ids(conn, photo_uids)
    last = conn.execute("SELECT max(position) FROM album_photos WHERE album_id = ?", (row["id"],)).fetchone()[0]
    position = float(last or 0.0)
    now = utcnow()
    added, already = [], []
    for photo_uid, photo_id in found.items():
        if conn.execute("SELECT 1 FROM album_photos WHERE album_id = ? AND photo_id = ?",
                        (row["id"], photo_id)).fetchone():
            already.append(photo_uid)
            continue
        position += 1.0
        conn.execute("INSERT INTO album_photos (album_id, photo_id, position, added_at) VALUES (?, ?, ?, ?)",
                     (row["id"], photo_id, position, now))
        added.append(photo_uid)
    if added:
        _touch(conn, row["id"])
    return {"added": added, "already": already, "missing": missing}


def remove_photos(conn: sqlite3.Connection, uid: str, photo_uids: Iterable[str]) -> dict[str, Any]:
    """Take photos out of the album (never out of the library)."""
    row = album_row(conn, uid)
    _hand_made(row)
    found, missing = _photo_ids(conn, photo_uids)
    removed, absent = [], []
    for photo_uid, photo_id in found.items():
        cur = conn.execute("DELETE FROM album_photos WHERE album_id = ? AND photo_id = ?", (row["id"], photo_id))
        (removed if cur.rowcount else absent).append(photo_uid)
    if removed:
        if row["cover_photo_id"] in found.values():
            conn.execute("UPDATE albums SET cover_photo_id = NULL WHERE id = ? AND cover_photo_id IN (%s)"
                         % ",".join("?" * len(found)), (row["id"], *found.values()))
        _touch(conn, row["id"])
    return {"removed": removed, "not_in_album": absent, "missing": missing}


def _position(conn: sqlite3.Connection, album_id: int, photo_uid: str, field: str) -> tuple[int, float]:
    r = conn.execute("SELECT ap.photo_id, ap.position FROM album_photos ap JOIN photos p ON p.id = ap.photo_id"
                     " WHERE ap.album_id = ? AND p.uid = ?", (album_id, photo_uid)).fetchone()
    if r is None:
        raise AlbumError(f"photo {photo_uid!r} is not in this album", field=field)
    return int(r[0]), float(r[1])


def renumber(conn: sqlite3.Connection, album_id: int) -> None:
    """Positions 1, 2, 3... in the current order (when midpoints have run out of precision)."""
    rows = conn.execute("SELECT photo_id FROM album_photos WHERE album_id = ? ORDER BY position, photo_id",
                        (album_id,)).fetchall()
    conn.executemany("UPDATE album_photos SET position = ? WHERE album_id = ? AND photo_id = ?",
                     [(float(i), album_id, r[0]) for i, r in enumerate(rows, 1)])


def move_photo(conn: sqlite3.Connection, uid: str, photo_uid: str, *, after: str | None = None,
               before: str | None = None) -> float:
    """Move a photo of a hand-made album right after `after` and/or right before `before` (give
    one or both; both must then be neighbours in that order). Returns its new position."""
    row = album_row(conn, uid)
    _hand_made(row)
    if after is None and before is None:
        raise AlbumError("say where to: `after` and/or `before` (photo ids in this album)", field="after")
    if photo_uid in (after, before):
        raise AlbumError("a photo cannot be moved next to itself", field="photo")
    album_id = int(row["id"])
    moving, _ = _position(conn, album_id, photo_uid, "photo")
    for attempt in range(2):
        lo = _position(conn, album_id, after, "after") if after is not None else None
        hi = _position(conn, album_id, before, "before") if before is not None else None
        if lo is not None and hi is None:  # the next photo after `after`, other than the moving one
            nxt = conn.execute("SELECT photo_id, position FROM album_photos WHERE album_id = ? AND photo_id != ?"
                               " AND (position > ? OR (position = ? AND photo_id > ?))"
                               " ORDER BY position, photo_id LIMIT 1",
                               (album_id, moving, lo[1], lo[1], lo[0])).fetchone()
            hi = (int(nxt[0]), float(nxt[1])) if nxt else None
        elif hi is not None and lo is None:
            prev = conn.execute("SELECT photo_id, position FROM album_photos WHERE album_id = ? AND photo_id != ?"
                                " AND (position < ? OR (position = ? AND photo_id < ?))"
                                " ORDER BY position DESC, photo_id DESC LIMIT 1",
                                (album_id, moving, hi[1], hi[1], hi[0])).fetchone()
            lo = (int(prev[0]), float(prev[1])) if prev else None
        elif lo is not None and hi is not None and (lo[1], lo[0]) >= (hi[1], hi[0]):
            raise AlbumError(f"{after!r} does not come before {before!r} in this album", field="before")
        if lo is None:
            assert hi is not None
            new = hi[1] - 1.0
        elif hi is None:
            new = lo[1] + 1.0
        else:
            new = (lo[1] + hi[1]) / 2.0
            if not (lo[1] < new < hi[1]) or hi[1] - lo[1] < MIN_GAP:
                if attempt == 0:
                    renumber(conn, album_id)
                    continue
                raise AlbumError("could not find room between those photos", field="after")  # pragma: no cover
        conn.execute("UPDATE album_photos SET position = ? WHERE album_id = ? AND photo_id = ?",
                     (new, album_id, moving))
        _touch(conn, album_id)
        return new
    raise AlbumError("could not find room between those photos", field="after")  # pragma: no cover

"""Share links in the store: what a link shares, and the one test every guest request goes through.

A link shares an album (a hand-made one through album_photos, a smart one through its saved query)
or a selection of photos. What a guest may see is expressed once, as a search-language query plus
a `daemon.search.Viewer` (`scope`): the guest's photo list is a search with that viewer, and every
single-photo, thumbnail or original request asks the same compiled WHERE clause whether the photo
is in it (`shared_photo_id`, `shares_thumb`). One definition for the list and for the checks means
a photo that is not listed cannot be reached by guessing its id or thumbnail key either. Private and
archived photos are never shared, even inside a shared album.

Guests never learn why a link does not open: unknown, revoked and expired tokens all read as "no
such link", and a photo outside the share reads exactly like a photo that does not exist.

Synchronous functions for the store's writer and reader threads (Database.write / Database.read);
password hashing (argon2, slow on purpose) is the caller's job, outside any transaction.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from daemon.auth.tokens import new_uid, token_hash
from daemon.library.thumbnails import ALL_SIZES
from daemon.search import SearchPage, Viewer, compile, parse, search, within_budget
from daemon.timeutil import utcnow

TOKEN_BYTES = 24  # secrets.token_urlsafe(24): 32 characters, 192 random bits
SESSION_TTL = 3600  # seconds a guest's password unlock lasts
MAX_SELECTION = 5000
#: The largest side a guest of a link without downloads may fetch: the biggest display thumbnail
#: (fit_1920). Bigger renders (fit_2560, fit_3840) come close enough to the original that serving
#: them would undo "no downloads".
GUEST_MAX_EDGE = 1920


def guest_may_fetch(share: "Share", size: str) -> bool:
    """Whether a guest of this link may fetch a thumbnail of this size: any size with downloads
    allowed, otherwise none bigger than the largest display thumbnail."""
    known = ALL_SIZES.get(size)
    return known is not None and (share.download or known.edge <= GUEST_MAX_EDGE)


class ShareError(Exception):
    """A share link that cannot be made or found; `status` is the HTTP answer, `field` the input at fault."""

    def __init__(self, message: str, *, status: int = 400, code: str = "bad_request",
                 field: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message, self.status, self.code, self.field, self.details = message, status, code, field, details


@dataclass(frozen=True)
class Share:
    id: int
    uid: str
    kind: str  # "album" | "selection"
    album_id: int | None
    album_uid: str | None
    album_type: str | None  # "album" | "smart"
    album_query: str | None
    title: str
    description: str | None
    has_password: bool
    download: bool
    expires_at: str | None
    views: int
    last_viewed_at: str | None
    created_by: int
    created_by_name: str
    created_at: str
    revoked_at: str | None

    def active(self, now: str | None = None) -> bool:
        now = now or utcnow()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def owner_view(self) -> dict[str, Any]:
        """What the link's owner (or an admin) sees in listings: everything but the secrets."""
        return {"id": self.uid, "kind": self.kind, "album": self.album_uid, "title": self.title,
                "description": self.description, "password": self.has_password, "download": self.download,
                "expires_at": self.expires_at, "views": self.views, "last_viewed_at": self.last_viewed_at,
                "created_by": self.created_by_name, "created_at": self.created_at, "revoked_at": self.revoked_at,
                "active": self.active()}

    def guest_view(self) -> dict[str, Any]:
        """What a guest learns about the link itself."""
        return {"title": self.title, "description": self.description, "kind": self.kind,
                "download": self.download, "expires_at": self.expires_at}


_SELECT = (
    "SELECT s.*, a.uid AS album_uid, a.type AS album_type, a.query AS album_query, a.title AS album_title,"
    " a.description AS album_description, u.name AS creator FROM shares s"
    " LEFT JOIN albums a ON a.id = s.album_id JOIN users u ON u.id = s.created_by")


def _share(row: sqlite3.Row) -> Share:
    title = row["title"] or row["album_title"] or "Shared photos"
    description = row["description"] if row["description"] is not None else row["album_description"]
    return Share(id=row["id"], uid=row["uid"], kind=row["kind"], album_id=row["album_id"], album_uid=row["album_uid"],
                 album_type=row["album_type"], album_query=row["album_query"], title=title, description=description,
                 has_password=row["password_hash"] is not None, download=bool(row["download"]),
                 expires_at=row["expires_at"], views=row["views"], last_viewed_at=row["last_viewed_at"],
                 created_by=row["created_by"], created_by_name=row["creator"], created_at=row["created_at"],
                 revoked_at=row["revoked_at"])


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def expiry_text(when: datetime) -> str:
    """A timezone-aware (or naive UTC) datetime as the store keeps times; ShareError if not in the future."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    when = when.astimezone(timezone.utc)
    now = datetime.now(timezone.utc)
    if when <= now:
        raise ShareError("expires_at must be in the future", field="expires_at")
    if when > now + timedelta(days=3660):
        raise ShareError("expires_at must be within ten years (leave it out for a link without expiry)",
                         field="expires_at")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the owner's side -----------------------------------------------------------------------------


def create_share(conn: sqlite3.Connection, *, user_id: int, album_uid: str | None = None,
                 photo_uids: list[str] | None = None, title: str | None = None, description: str | None = None,
                 expires_at: str | None = None, password_hash: str | None = None,
                 download: bool = False) -> tuple[Share, str]:
    """A new link for an album or a selection, and its token (returned here once, never stored)."""
    if (album_uid is None) == (photo_uids is None):
        raise ShareError("give either album (an album id) or photos (a list of photo ids)", field="album")
    album_id = None
    photo_ids: list[int] = []
    if album_uid is not None:
        row = conn.execute("SELECT id FROM albums WHERE uid = ?", (album_uid,)).fetchone()
        if row is None:
            raise ShareError(f"no album {album_uid!r}", status=404, code="not_found", field="album")
        album_id = row["id"]
    else:
        uids = list(dict.fromkeys(photo_uids or []))
        if not uids:
            raise ShareError("photos must name at least one photo", field="photos")
        if len(uids) > MAX_SELECTION:
            raise ShareError(f"a selection may have at most {MAX_SELECTION} photos", field="photos")
        found: dict[str, int] = {}
        for i in range(0, len(uids), 500):
            chunk = uids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            found.update((r["uid"], r["id"]) for r in conn.execute(
                f"SELECT uid, id FROM photos WHERE uid IN ({marks}) AND primary_file_id IS NOT NULL", chunk))
        missing = [u for u in uids if u not in found]
        if missing:
            raise ShareError(f"no photo {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                             status=400, field="photos", details={"missing": missing[:100]})
        photo_ids = [found[u] for u in uids]
    token = new_token()
    uid = new_uid()
    cur = conn.execute(
        "INSERT INTO shares (uid, token_hash, kind, album_id, title, description, password_hash, download, expires_at,"
        " created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (uid, token_hash(token), "album" if album_id is not None else "selection", album_id, title, description,
         password_hash, int(download), expires_at, user_id, utcnow()))
    share_id = int(cur.lastrowid or 0)
    conn.executemany("INSERT INTO share_photos (share_id, photo_id) VALUES (?, ?)", [(share_id, p) for p in photo_ids])
    return get_share(conn, uid), token


def get_share(conn: sqlite3.Connection, uid: str, *, user_id: int | None = None) -> Share:
    """A link by its public id; with user_id, only if that user made it (others: not found)."""
    sql, params = _SELECT + " WHERE s.uid = ?", [uid]
    if user_id is not None:
        sql += " AND s.created_by = ?"
        params.append(user_id)
    row = conn.execute(sql, params).fetchone()
    if row is None:
        raise ShareError(f"no share link {uid!r}", status=404, code="not_found")
    return _share(row)


def list_shares(conn: sqlite3.Connection, *, user_id: int | None = None) -> list[Share]:
    """Links made by user_id, newest first; every link when user_id is None (an admin)."""
    if user_id is None:
        rows = conn.execute(_SELECT + " ORDER BY s.id DESC")
    else:
        rows = conn.execute(_SELECT + " WHERE s.created_by = ? ORDER BY s.id DESC", (user_id,))
    return [_share(r) for r in rows]


def revoke_share(conn: sqlite3.Connection, uid: str, *, user_id: int | None = None) -> Share:
    """Stop a link at once (its guest sessions with it). The row stays, for the owner's record."""
    share = get_share(conn, uid, user_id=user_id)
    if share.revoked_at is None:
        conn.execute("UPDATE shares SET revoked_at = ? WHERE id = ?", (utcnow(), share.id))
    conn.execute("DELETE FROM share_sessions WHERE share_id = ?", (share.id,))
    return get_share(conn, uid)


UNSET: Any = object()  # "leave as it is", distinct from None ("remove")


def update_share(conn: sqlite3.Connection, uid: str, *, user_id: int | None = None, title: Any = UNSET,
                 description: Any = UNSET, expires_at: Any = UNSET, password_hash: Any = UNSET,
                 download: Any = UNSET) -> Share:
    """Change a live link in place: its token (the URL people already have) stays the same.
    None removes a title (the album's shows again), a description, an expiry or a password.
    A new or removed password ends the guests' password sessions, so everyone asks again."""
    share = get_share(conn, uid, user_id=user_id)
    if share.revoked_at is not None:
        raise ShareError("a revoked link cannot be changed; make a new one", status=409, code="conflict")
    changes = {k: v for k, v in (("title", title), ("description", description), ("expires_at", expires_at),
                                  ("password_hash", password_hash)) if v is not UNSET}
    if download is not UNSET:
        changes["download"] = int(bool(download))
    if changes:
        conn.execute(f"UPDATE shares SET {', '.join(f'{k} = ?' for k in changes)} WHERE id = ?",
                     (*changes.values(), share.id))
    if password_hash is not UNSET:
        conn.execute("DELETE FROM share_sessions WHERE share_id = ?", (share.id,))
    return get_share(conn, uid)


# -- the guest's side -----------------------------------------------------------------------------


def active_share(conn: sqlite3.Connection, token: str) -> tuple[Share, str | None] | None:
    """(the link, its password hash) for a token that opens something now; None for anything else."""
    row = conn.execute(_SELECT + " WHERE s.token_hash = ?", (token_hash(token),)).fetchone()
    if row is None:
        return None
    share = _share(row)
    if not share.active():
        return None
    return share, row["password_hash"]


def token_known(conn: sqlite3.Connection, token: str) -> bool:
    """Whether a token belongs to any link, live or not: only tokens that never existed count as
    guessing (a guest reloading a revoked link is not an attacker)."""
    return conn.execute("SELECT 1 FROM shares WHERE token_hash = ?", (token_hash(token),)).fetchone() is not None


def count_view(conn: sqlite3.Connection, share_id: int) -> None:
    conn.execute("UPDATE shares SET views = views + 1, last_viewed_at = ? WHERE id = ?", (utcnow(), share_id))


def new_session(conn: sqlite3.Connection, share_id: int, *, ttl: int = SESSION_TTL) -> str:
    """A guest session for a password-protected link (after the right password); old ones are pruned."""
    now = utcnow()
    conn.execute("DELETE FROM share_sessions WHERE expires_at <= ?", (now,))
    token = secrets.token_urlsafe(TOKEN_BYTES)
    until = (datetime.now(timezone.utc) + timedelta(seconds=ttl)).strftime("%Y-%m-%dT%H:%M:%SZ")
    conn.execute("INSERT INTO share_sessions (token_hash, share_id, expires_at) VALUES (?, ?, ?)",
                 (token_hash(token), share_id, until))
    return token


def session_valid(conn: sqlite3.Connection, share_id: int, token: str) -> bool:
    row = conn.execute("SELECT 1 FROM share_sessions WHERE token_hash = ? AND share_id = ? AND expires_at > ?",
                       (token_hash(token), share_id, utcnow())).fetchone()
    return row is not None


def scope(conn: sqlite3.Connection, share: Share) -> tuple[str, Viewer]:
    """What the link shows, as a search query and a viewer: the single definition every guest
    request is checked against."""
    if share.kind == "album":
        if share.album_type == "smart":
            return share.album_query or "", Viewer(private=False, archived=False)
        return "", Viewer(private=False, archived=False, album_ids=(int(share.album_id or 0),))
    ids = tuple(r[0] for r in conn.execute("SELECT photo_id FROM share_photos WHERE share_id = ?", (share.id,)))
    return "", Viewer(private=False, archived=False, photo_ids=ids)


def shared_page(conn: sqlite3.Connection, share: Share, *, order: str = "newest", cursor: str | None = None,
                limit: int = 100) -> SearchPage:
    q, viewer = scope(conn, share)
    return search(conn, q, order=order, cursor=cursor, limit=limit, viewer=viewer)


def _where(conn: sqlite3.Connection, share: Share) -> tuple[str, dict[str, Any]]:
    q, viewer = scope(conn, share)
    compiled = compile(parse(q), viewer=viewer, conn=conn)
    return compiled.where, dict(compiled.params)


def shared_photo_id(conn: sqlite3.Connection, share: Share, uid: str) -> int | None:
    """The photo's row id if the link shows it; None if it does not (or does not exist)."""
    with within_budget(conn):  # a smart album's query: a search's time budget (QueryTooExpensive past it)
        where, params = _where(conn, share)
        params["share_uid"] = uid
        row = conn.execute(f"SELECT p.id FROM photos AS p WHERE p.uid = :share_uid AND {where}", params).fetchone()
    return None if row is None else int(row[0])


def shares_thumb(conn: sqlite3.Connection, share: Share, thumb_key: str) -> bool:
    """True if a photo the link shows has this thumbnail key."""
    with within_budget(conn):
        where, params = _where(conn, share)
        params["share_key"] = thumb_key
        row = conn.execute(
            "SELECT 1 FROM photos AS p WHERE p.id IN (SELECT f.photo_id FROM files AS f WHERE f.sha1 = :share_key)"
            f" AND p.thumb_key = :share_key AND {where} LIMIT 1", params).fetchone()
    return row is not None

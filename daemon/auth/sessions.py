"""Login sessions and app tokens in the store: synchronous SQL for the writer and the readers.

A session is one login on one device. It holds the hash of its current refresh token; every
token it replaced is kept in refresh_history. A refresh with the current one rotates it; a
refresh with any earlier one -- the one just before, or a grandparent a thief kept while the owner
refreshed twice -- means a copy was stolen and used, so the session ends. (Checking only the
previous token would let a thief who waits for two rotations fail quietly and try again.)
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from typing import Any

from daemon.auth.errors import NotFound
from daemon.auth.roles import Scope
from daemon.auth.tokens import new_uid
from daemon.timeutil import utcnow


def utc_in(seconds: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def create_session(conn: sqlite3.Connection, user_id: int, refresh_hash: str, *, address: str | None,
                   user_agent: str | None, ttl: int) -> str:
    uid = new_uid()
    now = utcnow()
    conn.execute(
        "INSERT INTO sessions (uid, user_id, refresh_hash, address, user_agent, created_at, last_used_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (uid, user_id, refresh_hash, address, (user_agent or "")[:200] or None, now, now, utc_in(ttl)))
    return uid


def rotate_refresh(conn: sqlite3.Connection, presented: str, new_hash: str, *, ttl: int) -> sqlite3.Row | str:
    """The session (joined with its user) after swapping its refresh token, or why it was refused.

    Returns the reason instead of raising so that the caller's transaction commits: reuse of
    the previous token (a stolen copy) revokes the session, and that must stick."""
    now = utcnow()
    row = conn.execute(
        "SELECT s.*, u.name, u.role FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.refresh_hash = ?",
        (presented,)).fetchone()
    if row is None:
        stolen = conn.execute(
            "SELECT s.id FROM refresh_history h JOIN sessions s ON s.id = h.session_id"
            " WHERE h.refresh_hash = ? AND s.revoked_at IS NULL", (presented,)).fetchone()
        if stolen is None:  # sessions from before refresh_history kept only the one before
            stolen = conn.execute("SELECT id FROM sessions WHERE prev_refresh_hash = ? AND revoked_at IS NULL",
                                  (presented,)).fetchone()
        if stolen is not None:
            conn.execute("UPDATE sessions SET revoked_at = ? WHERE id = ?", (now, stolen["id"]))
            return "this refresh token was already used; the session has been ended for safety"
        return "unknown refresh token"
    if row["revoked_at"] is not None or row["expires_at"] <= now:
        return "the session has ended; log in again"
    conn.execute("INSERT OR IGNORE INTO refresh_history (refresh_hash, session_id) VALUES (?, ?)",
                 (row["refresh_hash"], row["id"]))
    conn.execute("UPDATE sessions SET prev_refresh_hash = refresh_hash, refresh_hash = ?, last_used_at = ?,"
                 " expires_at = ? WHERE id = ?", (new_hash, now, utc_in(ttl), row["id"]))
    return row


def active_session(conn: sqlite3.Connection, uid: str, user_id: int) -> sqlite3.Row | None:
    """The live session with this uid for this user, joined with the user's name and role."""
    return conn.execute(
        "SELECT s.uid, s.user_id, u.name, u.role FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.uid = ? AND s.user_id = ? AND s.revoked_at IS NULL AND s.expires_at > ?",
        (uid, user_id, utcnow())).fetchone()


def session_dict(row: sqlite3.Row, current: str | None) -> dict[str, Any]:
    return {"id": row["uid"], "address": row["address"], "user_agent": row["user_agent"],
            "created_at": row["created_at"], "last_used_at": row["last_used_at"],
            "expires_at": row["expires_at"], "current": row["uid"] == current}


def list_sessions(conn: sqlite3.Connection, user_id: int, current: str | None) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?"
                        " ORDER BY last_used_at DESC", (user_id, utcnow()))
    return [session_dict(r, current) for r in rows]


def revoke_session(conn: sqlite3.Connection, user_id: int, uid: str) -> None:
    n = conn.execute("UPDATE sessions SET revoked_at = ? WHERE uid = ? AND user_id = ? AND revoked_at IS NULL",
                     (utcnow(), uid, user_id)).rowcount
    if not n:
        raise NotFound(f"no active session {uid!r}")


def prune_sessions(conn: sqlite3.Connection, *, keep_days: int = 30) -> int:
    """Forget sessions that ended more than keep_days ago (the table would grow forever)."""
    cutoff = utc_in(-keep_days * 86400)
    return conn.execute("DELETE FROM sessions WHERE expires_at < ? OR revoked_at < ?", (cutoff, cutoff)).rowcount


# -- app tokens -------------------------------------------------------------------------------------


def create_app_token(conn: sqlite3.Connection, user_id: int, name: str, token_hash: str,
                     scopes: frozenset[Scope], *, ttl: int | None) -> dict[str, Any]:
    uid = new_uid()
    now = utcnow()
    expires = utc_in(ttl) if ttl else None
    names = sorted(s.value for s in scopes)
    conn.execute("INSERT INTO app_tokens (uid, user_id, name, token_hash, scopes, created_at, expires_at)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?)", (uid, user_id, name, token_hash, json.dumps(names), now, expires))
    return {"id": uid, "name": name, "scopes": names, "created_at": now, "expires_at": expires, "last_used_at": None}


def app_token_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["uid"], "name": row["name"], "scopes": json.loads(row["scopes"]),
            "created_at": row["created_at"], "expires_at": row["expires_at"], "last_used_at": row["last_used_at"]}


def list_app_tokens(conn: sqlite3.Connection, user_id: int) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM app_tokens WHERE user_id = ? AND revoked_at IS NULL ORDER BY created_at DESC",
                        (user_id,))
    return [app_token_dict(r) for r in rows]


def revoke_app_token(conn: sqlite3.Connection, user_id: int, uid: str) -> None:
    n = conn.execute("UPDATE app_tokens SET revoked_at = ? WHERE uid = ? AND user_id = ? AND revoked_at IS NULL",
                     (utcnow(), uid, user_id)).rowcount
    if not n:
        raise NotFound(f"no app token {uid!r}")


def active_app_token(conn: sqlite3.Connection, token_hash: str) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT t.id, t.uid, t.user_id, t.scopes, t.last_used_at, u.name, u.role FROM app_tokens t"
        " JOIN users u ON u.id = t.user_id"
        " WHERE t.token_hash = ? AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?)",
        (token_hash, utcnow())).fetchone()

"""User accounts in the store: plain synchronous SQL, run by the writer (API) or by the
`shoebox users` command on its own connection.

Rules kept here so the API and the command line cannot disagree: names are short and plain; the
last admin can be neither removed nor demoted (nobody could manage the library any more); a
password change ends every session of that user and, unless asked to keep them, their app tokens.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from daemon.auth.errors import AccountError, Conflict, LastAdmin, NotFound
from daemon.auth.roles import Role
from daemon.timeutil import utcnow

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def check_name(name: str) -> str:
    name = str(name).strip()
    if not NAME_RE.match(name):
        raise AccountError(
            f"invalid user name {name!r}: 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit")
    return name


def user_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "role": row["role"], "created_at": row["created_at"],
            "password_changed_at": row["password_changed_at"], "locked_until": row["locked_until"],
            "last_login_at": row["last_login_at"]}


def admin_exists(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM users WHERE role = 'admin' LIMIT 1").fetchone() is not None


def get_user(conn: sqlite3.Connection, name: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM users WHERE name = ?", (str(name).strip(),)).fetchone()


def get_user_by_id(conn: sqlite3.Connection, user_id: int) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM users WHERE id = ?", (int(user_id),)).fetchone()


def require_user_by_id(conn: sqlite3.Connection, user_id: int) -> sqlite3.Row:
    row = get_user_by_id(conn, user_id)
    if row is None:
        raise NotFound(f"no user with id {user_id}")
    return row


def list_users(conn: sqlite3.Connection, *, user_id: int | None = None) -> list[dict[str, Any]]:
    """Every account (or the one with user_id) with its live sessions and app tokens counted, for
    an admin deciding whom to revoke or remove."""
    now = utcnow()
    rows = conn.execute(
        "SELECT u.*,"
        " (SELECT count(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > ?)"
        "   AS live_sessions,"
        " (SELECT count(*) FROM app_tokens t WHERE t.user_id = u.id AND t.revoked_at IS NULL"
        "   AND (t.expires_at IS NULL OR t.expires_at > ?)) AS live_tokens"
        " FROM users u WHERE ? IS NULL OR u.id = ? ORDER BY u.name COLLATE NOCASE", (now, now, user_id, user_id))
    return [{**user_dict(r), "sessions": r["live_sessions"], "app_tokens": r["live_tokens"]} for r in rows]


def record_login(conn: sqlite3.Connection, user_id: int) -> None:
    """A successful login: the failure count is cleared and the time kept for the admins' list."""
    conn.execute("UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = ? WHERE id = ?",
                 (utcnow(), user_id))


def create_user(conn: sqlite3.Connection, name: str, role: Role, password_hash: str) -> int:
    """A new user; Conflict if the name is taken (names compare without case)."""
    name = check_name(name)
    if get_user(conn, name) is not None:
        raise Conflict(f"a user named {name!r} already exists")
    now = utcnow()
    cur = conn.execute(
        "INSERT INTO users (name, role, password_hash, created_at, updated_at, password_changed_at)"
        " VALUES (?, ?, ?, ?, ?, ?)", (name, Role(role).value, password_hash, now, now, now))
    return int(cur.lastrowid)


def _require(conn: sqlite3.Connection, name: str) -> sqlite3.Row:
    row = get_user(conn, name)
    if row is None:
        raise NotFound(f"no user named {name!r}")
    return row


def is_last_admin(conn: sqlite3.Connection, row: sqlite3.Row) -> bool:
    if row["role"] != Role.ADMIN.value:
        return False
    return conn.execute("SELECT count(*) FROM users WHERE role = 'admin'").fetchone()[0] <= 1


def set_password(conn: sqlite3.Connection, name: str, password_hash: str, *, keep_tokens: bool = False) -> int:
    """Replace the password, lift any lockout and end every session and, unless keep_tokens, every
    app token (whoever learnt the old password may have made one); returns sessions ended."""
    row = _require(conn, name)
    now = utcnow()
    conn.execute("UPDATE users SET password_hash = ?, password_changed_at = ?, updated_at = ?, failed_logins = 0,"
                 " locked_until = NULL WHERE id = ?", (password_hash, now, now, row["id"]))
    if not keep_tokens:
        conn.execute("UPDATE app_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL", (now, row["id"]))
    return conn.execute("UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                        (now, row["id"])).rowcount


def set_role(conn: sqlite3.Connection, name: str, role: Role) -> None:
    row = _require(conn, name)
    if Role(role) is not Role.ADMIN and is_last_admin(conn, row):
        raise LastAdmin(f"{row['name']!r} is the last admin and cannot be demoted; make another admin first")
    conn.execute("UPDATE users SET role = ?, updated_at = ? WHERE id = ?", (Role(role).value, utcnow(), row["id"]))


def remove_user(conn: sqlite3.Connection, name: str, *, heir: int | None = None) -> dict[str, int]:
    """Delete a user with their sessions and app tokens; never the last admin.

    What a household expects of what they made: their albums stay (others look at them) and go to
    `heir` (the admin who removed them) or, without one (the command line), to the admins as a
    group (owner NULL: only admins change them); their share links end (the guests were invited by
    someone who is gone; an admin shares again if it should go on). Sessions, app tokens and
    links go by ON DELETE CASCADE; albums by ON DELETE SET NULL unless handed to the heir first.
    Returns what was ended or handed over, for the log."""
    row = _require(conn, name)
    if is_last_admin(conn, row):
        raise LastAdmin(f"{row['name']!r} is the last admin and cannot be removed; make another admin first")
    uid, now = row["id"], utcnow()
    counts = {
        "sessions": conn.execute("SELECT count(*) FROM sessions WHERE user_id = ? AND revoked_at IS NULL"
                                 " AND expires_at > ?", (uid, now)).fetchone()[0],
        "app_tokens": conn.execute("SELECT count(*) FROM app_tokens WHERE user_id = ? AND revoked_at IS NULL",
                                   (uid,)).fetchone()[0],
        "shares": conn.execute("SELECT count(*) FROM shares WHERE created_by = ? AND revoked_at IS NULL",
                               (uid,)).fetchone()[0],
        "albums": conn.execute("SELECT count(*) FROM albums WHERE owner = ?", (uid,)).fetchone()[0],
    }
    if heir is not None and heir != uid:
        conn.execute("UPDATE albums SET owner = ? WHERE owner = ?", (heir, uid))
    conn.execute("DELETE FROM users WHERE id = ?", (uid,))
    return counts

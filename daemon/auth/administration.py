"""Admins managing other people's accounts (the API's /api/v1/users): list, add, change the role,
reset a password, remove.

The rules themselves live in daemon.auth.accounts, which `shoebox users` uses too, so the web page
and the command line cannot disagree (names, password strength, the last admin). What this module
adds is what only a running daemon has: the hashing thread, telling the thumbnail server's cache
that grants were revoked, and the audit line. Every change is logged on the `daemon.audit`
logger, naming who did what to whom from which address -- never a password or a token -- so
`journalctl -u shoebox | grep daemon.audit` answers "who gave Bob admin?".

Two things an admin does to their own account go through the own-account routes instead: a new
password (POST /api/v1/auth/password asks for the current one, so a borrowed unlocked browser
cannot take the account over) and removing themselves (another admin does it, so nobody locks
themselves out by a slip on the admin page).
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from daemon.auth import accounts, passwords
from daemon.auth.errors import AccountError, Conflict, LastAdmin
from daemon.auth.roles import Principal, Role
from daemon.auth.service import AuthService

audit = logging.getLogger("daemon.audit")


class OwnAccount(Conflict):
    """An admin route used on the caller's own account where an own-account route must be used."""

    code = "own_account"


def _actor(who: Principal, address: str) -> str:
    via = " (app token)" if who.via == "app_token" else ""
    return f"admin {who.username!r}{via} from {address}"


async def _hash(auth: AuthService, password: str) -> str:
    try:
        return await auth.hash_in_thread(passwords.hash_password, password)
    except passwords.WeakPassword as exc:
        raise AccountError(str(exc), details={"field": "password"}) from None


def _account(conn: sqlite3.Connection, user_id: int) -> dict[str, Any]:
    found = accounts.list_users(conn, user_id=user_id)
    if not found:
        accounts.require_user_by_id(conn, user_id)  # raises NotFound
    return found[0]


async def list_accounts(auth: AuthService) -> list[dict[str, Any]]:
    return await auth.db.read(accounts.list_users)


async def create_account(auth: AuthService, who: Principal, name: str, role: Role, password: str, *,
                         address: str) -> dict[str, Any]:
    """A new account; Conflict if the name is taken (checked before the slow hash, and again in
    the write in case two admins add the same name at once)."""
    name = accounts.check_name(name)
    if await auth.db.read(lambda c: accounts.get_user(c, name)) is not None:
        raise Conflict(f"a user named {name!r} already exists", details={"field": "name"})
    hashed = await _hash(auth, password)
    made = await auth.db.write(lambda c: _account(c, accounts.create_user(c, name, role, hashed)))
    audit.info("%s created %s %r (id %d)", _actor(who, address), made["role"], made["name"], made["id"])
    return made


async def change_role(auth: AuthService, who: Principal, user_id: int, role: Role | None, *,
                      address: str) -> dict[str, Any]:
    """Give an account another role (the last admin stays admin: LastAdmin, 409). A role takes
    effect on the account's next request: every request reads it from the store."""

    def change(conn: sqlite3.Connection) -> tuple[str, dict[str, Any]]:
        row = accounts.require_user_by_id(conn, user_id)
        if role is not None and role.value != row["role"]:
            accounts.set_role(conn, row["name"], role)
        return row["role"], _account(conn, user_id)

    before, after = await auth.db.write(change)
    if before != after["role"]:
        audit.info("%s changed the role of %r (id %d) from %s to %s", _actor(who, address), after["name"], user_id,
                   before, after["role"])
    return after


async def reset_password(auth: AuthService, who: Principal, user_id: int, password: str, *, keep_tokens: bool,
                         address: str) -> int:
    """Set a forgotten password. Every session of that account ends (its refresh tokens with it)
    and, unless keep_tokens, its app tokens: whoever knew the old password is out. Returns the
    number of sessions ended."""
    if user_id == who.user_id:
        raise OwnAccount("this is your own account: change your password with POST /api/v1/auth/password,"
                         " which asks for the current one")
    row = await auth.db.read(lambda c: accounts.require_user_by_id(c, user_id))
    hashed = await _hash(auth, password)

    def reset(conn: sqlite3.Connection) -> int:
        accounts.require_user_by_id(conn, user_id)  # still there after the hash
        return accounts.set_password(conn, row["name"], hashed, keep_tokens=keep_tokens)

    ended = await auth.db.write(reset)
    auth.revision += 1  # the thumbnail server forgets what it granted to the ended sessions
    audit.info("%s reset the password of %r (id %d); %d session(s) ended, app tokens %s", _actor(who, address),
               row["name"], user_id, ended, "kept" if keep_tokens else "revoked")
    return ended


async def remove_account(auth: AuthService, who: Principal, user_id: int, *, address: str) -> dict[str, int]:
    """Remove an account: its sessions and app tokens end, its share links end, its albums go to
    the admin who removed it (daemon.auth.accounts.remove_user). Never the last admin (409), never
    the caller's own account (409: another admin does that)."""

    def remove(conn: sqlite3.Connection) -> tuple[str, dict[str, int]]:
        row = accounts.require_user_by_id(conn, user_id)
        if user_id == who.user_id:
            if accounts.is_last_admin(conn, row):  # the first reason to give: it holds for anyone
                raise LastAdmin(f"{row['name']!r} is the last admin and cannot be removed; make another admin first")
            raise OwnAccount("you cannot remove your own account; another admin can")
        return row["name"], accounts.remove_user(conn, row["name"], heir=who.user_id)

    name, ended = await auth.db.write(remove)
    auth.revision += 1
    audit.info("%s removed %r (id %d): %d session(s) and %d app token(s) ended, %d share link(s) ended,"
               " %d album(s) now belong to %r", _actor(who, address), name, user_id, ended["sessions"],
               ended["app_tokens"], ended["shares"], ended["albums"], who.username)
    return ended

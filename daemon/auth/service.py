"""The auth service: logins, refresh, sessions, app tokens and resolving a token to a Principal.

One object per App, handed to the API. Password hashing runs on its own single thread: argon2
is meant to be slow and to use 32 MiB, and one thread bounds both (a burst of logins queues
instead of eating the Pi's memory) and keeps logins from waiting behind index jobs in the
worker pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from daemon.auth import accounts, passwords, sessions
from daemon.auth.errors import AccountError, Conflict, Forbidden, InvalidCredentials, TooManyAttempts
from daemon.auth.limiter import AttemptLimiter, Refused
from daemon.auth.roles import ROLE_SCOPES, Principal, Role, Scope
from daemon.auth.secret import load_or_create_secret
from daemon.auth.tokens import (ACCESS, APP_PREFIX, THUMB, TokenSigner, new_app_token, new_refresh_token,
                                token_hash)
from daemon.store.db import Database
from daemon.timeutil import utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")

#: What a refused login says, by the limit that refused it (daemon.auth.limiter).
LOGIN_REFUSALS = {
    "address": "too many failed logins from this address",
    "pair": "too many failed logins for this account from this address",
    "target": "this account is receiving many failed logins, so its logins are slowed down",
}


@dataclass(frozen=True)
class AuthSettings:
    access_ttl: int = 900
    session_ttl: int = 30 * 86400
    thumb_ttl: int = 7 * 86400
    max_failures: int = 5  # per (account, address), then that pair backs off (daemon.auth.limiter)
    address_failures: int = 20  # per address within `lockout` seconds, whatever the accounts
    account_failures: int = 20  # per account within `lockout` seconds, then the account is slowed down
    lockout: int = 900  # the window of those counts, and the longest backoff
    app_token_days: int = 365  # an app token made without an expiry ends after this many days (0: never)

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> "AuthSettings":
        return cls(**{k: section[k] for k in cls.__dataclass_fields__ if k in section})


class AuthService:
    def __init__(self, db: Database, data_dir: Path, settings: AuthSettings | None = None) -> None:
        self.db = db
        self.settings = settings or AuthSettings()
        self.signer = TokenSigner(load_or_create_secret(data_dir), access_ttl=self.settings.access_ttl,
                                  thumb_ttl=self.settings.thumb_ttl)
        self.logins = AttemptLimiter(pair_free=self.settings.max_failures,
                                     address_failures=self.settings.address_failures,
                                     target_failures=self.settings.account_failures, window=self.settings.lockout)
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="auth-hash")
        # Bumped by every revocation made through this service, so a cache of earlier answers
        # (the thumbnail server's) can drop them at once instead of waiting for its expiry.
        self.revision = 0

    def close(self) -> None:
        self._hasher.shutdown(wait=True)

    async def hash_in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._hasher, fn, *args)

    # -- accounts --------------------------------------------------------------------------------

    async def admin_exists(self) -> bool:
        return await self.db.read(accounts.admin_exists)

    async def setup(self, name: str, password: str) -> dict[str, Any]:
        """Create the first admin; Conflict once any admin exists (checked inside the write)."""
        accounts.check_name(name)
        try:
            hashed = await self.hash_in_thread(passwords.hash_password, password)
        except passwords.WeakPassword as exc:
            raise AccountError(str(exc), details={"field": "password"}) from None

        def create(conn: sqlite3.Connection) -> dict[str, Any]:
            if accounts.admin_exists(conn):
                raise Conflict("setup is done: an admin exists; log in instead")
            accounts.create_user(conn, name, Role.ADMIN, hashed)
            return accounts.user_dict(accounts.get_user(conn, name))

        return await self.db.write(create)

    # -- login and refresh ----------------------------------------------------------------------------

    async def login(self, name: str, password: str, *, address: str, user_agent: str | None) -> dict[str, Any]:
        """Tokens for the right password. The attempt is counted (daemon.auth.limiter) before the
        hash is checked, so parallel guesses cannot get more checks than the limits allow; names
        that do not exist are counted and checked (against a dummy hash) the same way."""
        try:
            attempt = self.logins.begin(name.lower()[:128], address)
        except Refused as exc:
            raise TooManyAttempts(f"{LOGIN_REFUSALS[exc.reason]}; try again in {exc.retry_after} s",
                                  retry_after=exc.retry_after) from None
        try:
            user = await self.db.read(lambda c: accounts.get_user(c, name))
            stored = user["password_hash"] if user is not None else passwords.DUMMY_HASH
            ok = await self.hash_in_thread(passwords.verify_password, stored, password) and user is not None
        finally:
            attempt.failed()  # stays counted unless succeeded() below takes it back
        if not ok:
            log.warning("failed login for %r from %s", name, address)
            raise InvalidCredentials("wrong user name or password")
        attempt.succeeded()
        rehash = passwords.needs_rehash(stored)
        new_hash = await self.hash_in_thread(passwords.hash_password, password) if rehash else None
        refresh = new_refresh_token()

        def start(conn: sqlite3.Connection) -> str:
            accounts.record_login(conn, user["id"])
            if new_hash:
                conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (new_hash, user["id"]))
            sessions.prune_sessions(conn)
            return sessions.create_session(conn, user["id"], token_hash(refresh), address=address,
                                           user_agent=user_agent, ttl=self.settings.session_ttl)

        session_uid = await self.db.write(start)
        return self._tokens(session_uid, user["id"], user["name"], user["role"], refresh)

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        new = new_refresh_token()
        row = await self.db.write(lambda c: sessions.rotate_refresh(c, token_hash(refresh_token), token_hash(new),
                                                                    ttl=self.settings.session_ttl))
        if isinstance(row, str):
            self.revision += 1  # a replayed refresh token revokes its session
            raise InvalidCredentials(row)
        return self._tokens(row["uid"], row["user_id"], row["name"], row["role"], new)

    def _tokens(self, session_uid: str, user_id: int, name: str, role: str, refresh: str) -> dict[str, Any]:
        access, expires = self.signer.access_token(session_uid, user_id)
        thumb, thumb_expires = self.signer.thumb_token(session_uid, user_id)
        return {"access_token": access, "token_type": "Bearer", "expires_in": expires - int(time.time()),
                "refresh_token": refresh, "thumb_token": thumb, "thumb_token_expires_in": thumb_expires - int(time.time()),
                "session": session_uid, "user": {"name": name, "role": role}}

    # -- resolving tokens ----------------------------------------------------------------------------

    async def authenticate(self, token: str) -> Principal:
        """The Principal for an `Authorization: Bearer` token (access or app token)."""
        if token.startswith(APP_PREFIX):
            return await self._app_token(token)
        claims = self.signer.decode(token, kind=ACCESS)
        return await self._session_principal(claims.session_uid, claims.user_id, via="session")

    async def authenticate_thumb(self, token: str) -> Principal:
        """The Principal for a `?t=` URL token: a thumbnail token, or an app token whose only scope
        is thumbnails. Either can do nothing but fetch thumbnails."""
        if token.startswith(APP_PREFIX):
            principal = await self._app_token(token)
            if principal.scopes != frozenset({Scope.THUMBNAILS}):
                raise InvalidCredentials("only a thumbnails-only app token may be put in a URL")
            return principal
        claims = self.signer.decode(token, kind=THUMB)
        principal = await self._session_principal(claims.session_uid, claims.user_id, via="thumb")
        return Principal(principal.user_id, principal.username, principal.role, frozenset({Scope.THUMBNAILS}),
                         via="thumb", session_uid=principal.session_uid)

    async def thumbnail_access(self, token: str, *, in_url: bool) -> tuple[Principal, float | None]:
        """Who may fetch thumbnails with this token (from `?t=` when in_url, else a Bearer header),
        and when the token itself expires (epoch seconds; None for app tokens, which the database
        ends). For the thumbnail server, which remembers the answer for a few seconds."""
        principal = await (self.authenticate_thumb(token) if in_url else self.authenticate(token))
        if not principal.can(Scope.THUMBNAILS):
            raise Forbidden("this token may not fetch thumbnails")
        expires = None
        if not token.startswith(APP_PREFIX):
            expires = float(self.signer.decode(token, kind=THUMB if in_url else ACCESS).expires)
        return principal, expires

    async def _session_principal(self, session_uid: str, user_id: int, *, via: str) -> Principal:
        row = await self.db.read(lambda c: sessions.active_session(c, session_uid, user_id))
        if row is None:
            raise InvalidCredentials("the session has ended; log in again")
        role = Role(row["role"])
        return Principal(row["user_id"], row["name"], role, ROLE_SCOPES[role], via=via, session_uid=session_uid)

    async def _app_token(self, token: str) -> Principal:
        hashed = token_hash(token)
        row = await self.db.read(lambda c: sessions.active_app_token(c, hashed))
        if row is None:
            raise InvalidCredentials("unknown, expired or revoked app token")
        role = Role(row["role"])
        scopes = frozenset(Scope(s) for s in json.loads(row["scopes"])) & ROLE_SCOPES[role]
        now = utcnow()
        if row["last_used_at"] is None or row["last_used_at"][:16] != now[:16]:  # at most a write a minute
            await self.db.write(lambda c: c.execute("UPDATE app_tokens SET last_used_at = ? WHERE id = ?",
                                                    (now, row["id"])))
        return Principal(row["user_id"], row["name"], role, scopes, via="app_token", token_uid=row["uid"])

    # -- sessions and app tokens of the caller ------------------------------------------------------

    async def logout(self, principal: Principal) -> None:
        if principal.session_uid is None:
            raise Forbidden("an app token has no session to log out of; revoke the token instead")
        await self.db.write(lambda c: sessions.revoke_session(c, principal.user_id, principal.session_uid))
        self.revision += 1

    async def list_sessions(self, principal: Principal) -> list[dict[str, Any]]:
        return await self.db.read(lambda c: sessions.list_sessions(c, principal.user_id, principal.session_uid))

    async def revoke_session(self, principal: Principal, uid: str) -> None:
        await self.db.write(lambda c: sessions.revoke_session(c, principal.user_id, uid))
        self.revision += 1

    async def create_app_token(self, principal: Principal, name: str, scopes: frozenset[Scope],
                               ttl: int | None) -> dict[str, Any]:
        too_much = scopes - ROLE_SCOPES[principal.role]
        if too_much:
            raise Forbidden(f"your role ({principal.role.value}) cannot grant {', '.join(sorted(s.value for s in too_much))}",
                            details={"field": "scopes"})
        if principal.via != "session":
            raise Forbidden("app tokens are made from a login session, not from another token")
        if ttl is None and self.settings.app_token_days:
            ttl = self.settings.app_token_days * 86400  # least privilege: a forgotten token does not live forever
        token = new_app_token()
        info = await self.db.write(lambda c: sessions.create_app_token(c, principal.user_id, name, token_hash(token),
                                                                       scopes, ttl=ttl))
        return {**info, "token": token}

    async def change_password(self, principal: Principal, current: str, new: str, *, keep_tokens: bool,
                              address: str) -> int:
        """The caller changes their own password, proving they know the current one. Every session
        ends (this one too: log in again) and, unless keep_tokens, every app token. Returns the
        number of sessions ended. Wrong current passwords count like failed logins, so a stolen
        session cannot be used to guess the password faster than the login page could."""
        if principal.session_uid is None:
            raise Forbidden("a password is changed from a login session, not with an app token")
        try:
            attempt = self.logins.begin(principal.username.lower()[:128], address)
        except Refused as exc:
            raise TooManyAttempts(f"{LOGIN_REFUSALS[exc.reason]}; try again in {exc.retry_after} s",
                                  retry_after=exc.retry_after) from None
        try:
            user = await self.db.read(lambda c: c.execute("SELECT * FROM users WHERE id = ?",
                                                          (principal.user_id,)).fetchone())
            ok = user is not None and await self.hash_in_thread(passwords.verify_password, user["password_hash"], current)
        finally:
            attempt.failed()
        if not ok:
            raise Forbidden("the current password is wrong", details={"field": "current_password"})
        attempt.succeeded()
        try:
            hashed = await self.hash_in_thread(passwords.hash_password, new)
        except passwords.WeakPassword as exc:
            raise AccountError(str(exc), details={"field": "new_password"}) from None
        ended = await self.db.write(lambda c: accounts.set_password(c, user["name"], hashed, keep_tokens=keep_tokens))
        self.revision += 1
        log.info("user %r changed their password; %d session(s) ended%s", user["name"], ended,
                 ", app tokens kept" if keep_tokens else ", app tokens revoked")
        return ended

    async def list_app_tokens(self, principal: Principal) -> list[dict[str, Any]]:
        return await self.db.read(lambda c: sessions.list_app_tokens(c, principal.user_id))

    async def revoke_app_token(self, principal: Principal, uid: str) -> None:
        await self.db.write(lambda c: sessions.revoke_app_token(c, principal.user_id, uid))
        self.revision += 1

"""Signed access tokens and random refresh / app tokens.

Access tokens are JWTs signed with HS256 (PyJWT): a standard, audited format whose checks we do
not have to write ourselves (signature, expiry, issuer), with the algorithm pinned so a token
cannot choose its own (`alg: none`). They live 15 minutes by default and name their session, and
every request also checks that the session still exists and is not revoked, so logging out or
revoking a session takes effect at once, not when the token expires.

Thumbnail tokens are the same JWTs with `typ: thumb`: accepted only as `?t=` on thumbnail
routes, so a URL copied out of an <img> tag opens nothing else. They are stable for a day (the
expiry is rounded to a day boundary) so thumbnail URLs, and with them the browser's cache, stay
the same between access-token refreshes.

Refresh and app tokens are 256-bit random strings; only their SHA-256 is stored (no slow hash
needed: they are not guessable like passwords).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from daemon.auth.errors import InvalidCredentials

ALGORITHM = "HS256"
ISSUER = "shoebox"
ACCESS = "access"
THUMB = "thumb"
REFRESH_PREFIX = "sbr_"
APP_PREFIX = "sba_"
DAY = 86400


@dataclass(frozen=True)
class Claims:
    kind: str  # ACCESS | THUMB
    session_uid: str
    user_id: int
    expires: int


class TokenSigner:
    """Makes and checks signed tokens with one secret."""

    def __init__(self, secret: bytes, *, access_ttl: int = 900, thumb_ttl: int = 7 * DAY) -> None:
        if len(secret) < 32:
            raise ValueError("the signing secret must have at least 32 bytes")
        self._secret = secret
        self.access_ttl = access_ttl
        self.thumb_ttl = thumb_ttl

    def _encode(self, kind: str, session_uid: str, user_id: int, iat: int, exp: int) -> str:
        payload = {"iss": ISSUER, "typ": kind, "sid": session_uid, "sub": str(user_id), "iat": iat, "exp": exp}
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def access_token(self, session_uid: str, user_id: int, *, now: float | None = None) -> tuple[str, int]:
        """(token, expiry as Unix time) for a session."""
        iat = int(time.time() if now is None else now)
        exp = iat + self.access_ttl
        return self._encode(ACCESS, session_uid, user_id, iat, exp), exp

    def thumb_token(self, session_uid: str, user_id: int, *, now: float | None = None) -> tuple[str, int]:
        """(token, expiry): the same string all day for one session, valid thumb_ttl to thumb_ttl + 1 day."""
        day = int(time.time() if now is None else now) // DAY * DAY
        exp = day + DAY + self.thumb_ttl
        return self._encode(THUMB, session_uid, user_id, day, exp), exp

    def decode(self, token: str, *, kind: str, now: float | None = None) -> Claims:
        """The claims of a valid token of this kind; InvalidCredentials for anything else."""
        options: dict[str, Any] = {"require": ["exp", "iat", "sid", "sub", "typ", "iss"]}
        try:
            if now is not None:  # tests move the clock; PyJWT reads time.time() itself
                payload = jwt.decode(token, self._secret, algorithms=[ALGORITHM], issuer=ISSUER,
                                     options={**options, "verify_exp": False})
                if payload["exp"] <= now:
                    raise jwt.ExpiredSignatureError("expired")
            else:
                payload = jwt.decode(token, self._secret, algorithms=[ALGORITHM], issuer=ISSUER, options=options)
        except jwt.ExpiredSignatureError:
            raise InvalidCredentials("the token has expired; refresh it or log in again") from None
        except jwt.PyJWTError:
            raise InvalidCredentials("the token is not valid") from None
        if payload.get("typ") != kind:
            raise InvalidCredentials("this kind of token cannot be used here")
        try:
            return Claims(kind=kind, session_uid=str(payload["sid"]), user_id=int(payload["sub"]),
                          expires=int(payload["exp"]))
        except (TypeError, ValueError):
            raise InvalidCredentials("the token is not valid") from None


def new_refresh_token() -> str:
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


def new_app_token() -> str:
    return APP_PREFIX + secrets.token_urlsafe(32)


def new_uid() -> str:
    """A public id for a session or token (not secret: it is shown in lists)."""
    return secrets.token_hex(8)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()

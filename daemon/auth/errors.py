"""Errors of the auth layer; the API turns each into a JSON answer with its status code."""

from __future__ import annotations

from typing import Any


class AuthError(Exception):
    """A request or command that authentication refuses; `status` is the HTTP answer."""

    status = 401
    code = "unauthorized"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidCredentials(AuthError):
    """Wrong user name or password, or a missing, expired, tampered or revoked token."""


class Forbidden(AuthError):
    status = 403
    code = "forbidden"


class TooManyAttempts(AuthError):
    """Too many failed logins for this account or from this address."""

    status = 429
    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class AccountError(AuthError):
    """A bad account request: unknown user, name taken, weak password, last admin."""

    status = 400
    code = "invalid_account"


class LastAdmin(AccountError):
    """Demoting or removing the only admin: nobody could manage the library any more."""

    status = 409
    code = "last_admin"


class Conflict(AuthError):
    status = 409
    code = "conflict"


class NotFound(AuthError):
    status = 404
    code = "not_found"

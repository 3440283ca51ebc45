"""Roles and scopes: what a user, a session or an app token may do.

Why scopes under roles: a role says what a person may do; an app token for a script carries a
subset of its owner's scopes (a photo frame needs only `read` + `thumbnails`), so a leaked token
does less harm. A token can never hold more than its owner's role grants, checked on every use,
so demoting a user also demotes their tokens at once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(str, enum.Enum):
    ADMIN = "admin"  # everything, including users and deleting originals
    USER = "user"  # browse and edit
    VIEWER = "viewer"  # browse only


class Scope(str, enum.Enum):
    READ = "read"  # list, search, view photos and originals
    WRITE = "write"  # edit photos, archive, albums
    ADMIN = "admin"  # users, settings, deleting files, metrics
    THUMBNAILS = "thumbnails"  # only GET /api/v1/t/...: safe to put in an <img> URL


ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.ADMIN: frozenset(Scope),
    Role.USER: frozenset({Scope.READ, Scope.WRITE, Scope.THUMBNAILS}),
    Role.VIEWER: frozenset({Scope.READ, Scope.THUMBNAILS}),
}


def parse_role(text: str) -> Role:
    """The Role named by text; ValueError naming the allowed ones otherwise."""
    try:
        return Role(str(text).strip().lower())
    except ValueError:
        raise ValueError(f"unknown role {text!r}; allowed: {', '.join(r.value for r in Role)}") from None


def parse_scopes(names: list[str] | tuple[str, ...]) -> frozenset[Scope]:
    """Scopes from their names; ValueError naming an unknown one."""
    out = set()
    for name in names:
        try:
            out.add(Scope(str(name).strip().lower()))
        except ValueError:
            raise ValueError(f"unknown scope {name!r}; allowed: {', '.join(s.value for s in Scope)}") from None
    return frozenset(out)


@dataclass(frozen=True)
class Principal:
    """Who is calling and what they may do, as resolved from a token for one request."""

    user_id: int
    username: str
    role: Role
    scopes: frozenset[Scope]
    via: str  # "session" | "app_token" | "thumb"
    session_uid: str | None = None
    token_uid: str | None = None

    def can(self, scope: Scope) -> bool:
        return scope in self.scopes

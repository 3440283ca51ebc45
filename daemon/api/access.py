"""Who may call what: a policy on every view, checked by one middleware before the view runs.

Deny by default: a view without a policy needs a valid token with the `read` scope, so a route
added without thinking about access is closed, not open. Public views say so with `@public`.
Only views marked `url_token=True` (thumbnails) look at a `?t=` token in the URL, and such a
token gives nothing but the thumbnails scope, so a URL copied out of an <img> tag opens nothing
else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web

from daemon.api.keys import APP_KEY
from daemon.auth.errors import Forbidden, InvalidCredentials
from daemon.auth.roles import Principal, Scope

POLICY_ATTR = "shoebox_access"
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("shoebox_principal")


@dataclass(frozen=True)
class Access:
    scope: Scope | None  # None: public
    url_token: bool = False  # may authenticate with ?t= (thumbnails only)


DEFAULT = Access(Scope.READ)


def public(view: Callable[..., Any]) -> Callable[..., Any]:
    """No credentials needed (health, login, refresh, first-run setup)."""
    setattr(view, POLICY_ATTR, Access(None))
    return view


def requires(scope: Scope, *, url_token: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def mark(view: Callable[..., Any]) -> Callable[..., Any]:
        setattr(view, POLICY_ATTR, Access(scope, url_token=url_token))
        return view
    return mark


def policy_of(view: Any) -> Access:
    return getattr(view, POLICY_ATTR, DEFAULT)


def principal(request: web.Request) -> Principal:
    """The caller of a view that is not public (the middleware put it there)."""
    return request[PRINCIPAL]


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


@web.middleware
async def authenticate(request: web.Request, handler):  # type: ignore[no-untyped-def]
    match = request.match_info
    if match.http_exception is not None:  # 404 / 405: nothing to protect
        return await handler(request)
    policy = policy_of(match.handler)
    if policy.scope is None:
        return await handler(request)
    auth = request.app[APP_KEY].auth
    if auth is None:
        raise InvalidCredentials("the server is starting")
    token = bearer(request)
    if token is not None:
        who = await auth.authenticate(token)
    elif policy.url_token and request.query.get("t"):
        who = await auth.authenticate_thumb(request.query["t"])
    else:
        raise InvalidCredentials("log in first: send `Authorization: Bearer <token>`")
    if not who.can(policy.scope):
        raise Forbidden(f"this needs the {policy.scope.value!r} permission, which your "
                        f"{'token' if who.via == 'app_token' else 'role (' + who.role.value + ')'} does not have")
    request[PRINCIPAL] = who
    return await handler(request)

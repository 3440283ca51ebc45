"""Login, refresh, logout, sessions, app tokens and first-run setup: /api/v1/auth/*, /api/v1/setup."""

from __future__ import annotations

from typing import Any, Literal, Optional

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r201, r204
from pydantic import BaseModel, Field

from daemon.api.access import principal, public
from daemon.api.errors import validated
from daemon.api.keys import APP_KEY
from daemon.auth.errors import InvalidCredentials
from daemon.auth.roles import parse_scopes
from daemon.auth.service import AuthService

Name = Field(min_length=1, max_length=64)
Password = Field(min_length=1, max_length=1024)


class LoginBody(BaseModel):
    username: str = Name
    password: str = Password
    refresh_in: Literal["body", "cookie"] = Field(
        default="body", description="cookie: the refresh token only in the HttpOnly cookie, not in the answer (web app)")


class RefreshBody(BaseModel):
    refresh_token: Optional[str] = Field(
        default=None, min_length=1, max_length=200,
        description="the refresh token; leave it out to use the `shoebox_refresh` cookie that login set")


class SetupBody(BaseModel):
    username: str = Name
    password: str = Field(min_length=8, max_length=1024)


class AppTokenBody(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="what the token is for: 'photo frame'")
    scopes: list[Literal["read", "write", "admin", "thumbnails"]] = Field(min_length=1, max_length=4)
    expires_in_days: Optional[int] = Field(default=None, ge=1, le=3650,
                                           description="left out: [auth] app_token_days (365 unless set)")


class PasswordBody(BaseModel):
    current_password: str = Password
    new_password: str = Field(min_length=8, max_length=1024)
    keep_tokens: bool = Field(default=False, description="keep your app tokens working (default: revoke them)")


class UserOut(BaseModel):
    name: str
    role: Literal["admin", "user", "viewer"]


class Tokens(BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    refresh_token: str
    thumb_token: str = Field(description="for ?t= on thumbnail URLs only")
    thumb_token_expires_in: int
    session: str
    user: UserOut


class SessionOut(BaseModel):
    id: str
    address: Optional[str] = None
    user_agent: Optional[str] = None
    created_at: str
    last_used_at: str
    expires_at: str
    current: bool


class AppTokenOut(BaseModel):
    id: str
    name: str
    scopes: list[str]
    created_at: str
    expires_at: Optional[str] = None
    last_used_at: Optional[str] = None


class AppTokenCreated(AppTokenOut):
    token: str = Field(description="shown once; only its hash is kept")


class Me(BaseModel):
    name: str
    role: str
    scopes: list[str]
    via: str


class SetupState(BaseModel):
    needed: bool


#: The web app's refresh token: HttpOnly (no script reads it), SameSite=Strict (no other site's
#: page sends it) and scoped to the auth routes (no image or API request carries it).
REFRESH_COOKIE = "shoebox_refresh"
COOKIE_PATH = "/api/v1/auth"


def _with_refresh_cookie(request: web.Request, tokens: dict[str, Any], *, in_body: bool) -> web.Response:
    """Answer the tokens and keep the refresh token in the cookie as well, so a browser can
    restore its session after a reload without any script ever holding the refresh token."""
    cookie_value = tokens["refresh_token"]
    if not in_body:
        tokens = {**tokens, "refresh_token": ""}
    response = web.json_response(tokens)
    response.set_cookie(REFRESH_COOKIE, cookie_value, path=COOKIE_PATH, httponly=True, samesite="Strict",
                        secure=request.secure, max_age=_auth(request).settings.session_ttl)
    return response


def _auth(request: web.Request) -> AuthService:
    auth = request.app[APP_KEY].auth
    assert auth is not None
    return auth


@public
@validated
async def login(request: web.Request, body: LoginBody) -> r200[Tokens]:
    """Log in with a user name and password: an access token (15 min), a refresh token and a
    thumbnail URL token. Failed attempts are limited per account and per address (429).

    Tags: auth
    Status Codes:
        200: logged in
        401: wrong user name or password
        429: too many failed attempts; see Retry-After
    """
    tokens = await _auth(request).login(body.username, body.password, address=request.remote or "?",
                                        user_agent=request.headers.get("User-Agent"))
    return _with_refresh_cookie(request, tokens, in_body=body.refresh_in == "body")


@public
@validated
async def refresh(request: web.Request, body: RefreshBody) -> r200[Tokens]:
    """Swap a refresh token for new tokens. The refresh token rotates: the old one stops working,
    and presenting it again ends the session.

    Tags: auth
    """
    token = body.refresh_token or request.cookies.get(REFRESH_COOKIE)
    if not token:
        raise InvalidCredentials("no refresh token: send refresh_token, or log in again")
    tokens = await _auth(request).refresh(token)
    return _with_refresh_cookie(request, tokens, in_body=body.refresh_token is not None)


@validated
async def logout(request: web.Request) -> r204:
    """End the current session.

    Tags: auth
    """
    await _auth(request).logout(principal(request))
    response = web.Response(status=204)
    response.del_cookie(REFRESH_COOKIE, path=COOKIE_PATH)
    return response


@validated
async def me(request: web.Request) -> r200[Me]:
    """Who the token belongs to and what it may do.

    Tags: auth
    """
    who = principal(request)
    return web.json_response({"name": who.username, "role": who.role.value,
                              "scopes": sorted(s.value for s in who.scopes), "via": who.via})


@validated
async def list_sessions(request: web.Request) -> r200[list[SessionOut]]:
    """Your active sessions (logins on each device).

    Tags: auth
    """
    return web.json_response(await _auth(request).list_sessions(principal(request)))


@validated
async def revoke_session(request: web.Request, session_id: str, /) -> r204:
    """End one of your sessions (log a lost phone out).

    Tags: auth
    """
    await _auth(request).revoke_session(principal(request), session_id)
    return web.Response(status=204)


@validated
async def create_token(request: web.Request, body: AppTokenBody) -> r201[AppTokenCreated]:
    """Make an app token for a script, limited to scopes your role has. The token is shown once.

    Tags: auth
    """
    ttl = body.expires_in_days * 86400 if body.expires_in_days else None
    created = await _auth(request).create_app_token(principal(request), body.name.strip(),
                                                    parse_scopes(body.scopes), ttl)
    return web.json_response(created, status=201)


@validated
async def change_password(request: web.Request, body: PasswordBody) -> r204:
    """Change your own password. Every session of yours ends, this one too (log in again), and
    so do your app tokens unless `keep_tokens` is true.

    Tags: auth
    Status Codes:
        204: changed; log in with the new password
        400: the new password is too weak
        403: the current password is wrong, or the request came with an app token
        429: too many wrong passwords (counted with failed logins); see Retry-After
    """
    await _auth(request).change_password(principal(request), body.current_password, body.new_password,
                                         keep_tokens=body.keep_tokens, address=request.remote or "?")
    return web.Response(status=204)


@validated
async def list_tokens(request: web.Request) -> r200[list[AppTokenOut]]:
    """Your app tokens (never the tokens themselves).

    Tags: auth
    """
    return web.json_response(await _auth(request).list_app_tokens(principal(request)))


@validated
async def revoke_token(request: web.Request, token_id: str, /) -> r204:
    """Revoke one of your app tokens.

    Tags: auth
    """
    await _auth(request).revoke_app_token(principal(request), token_id)
    return web.Response(status=204)


@public
@validated
async def setup_state(request: web.Request) -> r200[SetupState]:
    """Whether first-run setup is still open (no admin exists yet).

    Tags: auth
    """
    return web.json_response({"needed": not await _auth(request).admin_exists()})


@public
@validated
async def setup(request: web.Request, body: SetupBody) -> r201[UserOut]:
    """Create the first admin. Works only while no admin exists; afterwards 409.

    Tags: auth
    Status Codes:
        201: the admin was created; log in with it
        409: setup is done
    """
    user = await _auth(request).setup(body.username, body.password)
    return web.json_response({"name": user["name"], "role": user["role"]}, status=201)


def setup_routes(web_app: web.Application, prefix: str) -> None:
    r = web_app.router
    r.add_post(f"{prefix}/auth/login", login)
    r.add_post(f"{prefix}/auth/refresh", refresh)
    r.add_post(f"{prefix}/auth/logout", logout)
    r.add_get(f"{prefix}/auth/me", me)
    r.add_get(f"{prefix}/auth/sessions", list_sessions)
    r.add_delete(f"{prefix}/auth/sessions/{{session_id}}", revoke_session)
    r.add_post(f"{prefix}/auth/tokens", create_token)
    r.add_get(f"{prefix}/auth/tokens", list_tokens)
    r.add_post(f"{prefix}/auth/password", change_password)
    r.add_delete(f"{prefix}/auth/tokens/{{token_id}}", revoke_token)
    r.add_get(f"{prefix}/setup", setup_state)
    r.add_post(f"{prefix}/setup", setup)

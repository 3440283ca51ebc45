"""Account administration for admins: /api/v1/users (issue 12, point 8).

The same rules as `shoebox users` (daemon.auth.accounts), reached through
daemon.auth.administration, which also writes the audit line of every change. This module only
validates, answers JSON and names the caller and their address.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r201, r204
from pydantic import BaseModel, ConfigDict, Field

from daemon.api.access import principal, requires
from daemon.api.errors import validated
from daemon.api.keys import APP_KEY
from daemon.auth import administration
from daemon.auth.passwords import MAX_LENGTH, MIN_LENGTH
from daemon.auth.roles import Role, Scope
from daemon.auth.service import AuthService

UserId = Annotated[int, Field(ge=1, le=2**62, description="the account's id (from GET /api/v1/users)")]
RoleName = Literal["admin", "user", "viewer"]
NewPassword = Field(min_length=MIN_LENGTH, max_length=MAX_LENGTH,
                    description=f"at least {MIN_LENGTH} characters, not only spaces")


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64,
                      description="1-64 letters, digits, '.', '_', '@' or '-'; unique, whatever the case")
    role: RoleName = Field(default="user", description="admin (everything), user (edits) or viewer (read only)")
    password: str = NewPassword


class UserChanges(BaseModel):
    """Fields to change; a field left out stays."""

    model_config = ConfigDict(extra="forbid")
    role: Optional[RoleName] = None


class PasswordReset(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str = NewPassword
    keep_tokens: bool = Field(default=False, description="keep the account's app tokens working (default: revoke them)")


class UserAccount(BaseModel):
    id: int
    name: str
    role: RoleName
    created_at: str
    last_login_at: Optional[str] = Field(default=None, description="null: no login since logins were first recorded (or never)")
    sessions: int = Field(description="logins still active (devices)")
    app_tokens: int = Field(description="app tokens still valid")


class Removed(BaseModel):
    sessions: int
    app_tokens: int
    shares: int = Field(description="share links the account made; they no longer open")
    albums: int = Field(description="albums the account owned; they now belong to the admin who removed it")


def _auth(request: web.Request) -> AuthService:
    auth = request.app[APP_KEY].auth
    assert auth is not None
    return auth


def _address(request: web.Request) -> str:
    return request.remote or "?"


def _public(account: dict) -> dict:
    return {k: account[k] for k in UserAccount.model_fields}


@requires(Scope.ADMIN)
@validated
async def list_users(request: web.Request) -> r200[list[UserAccount]]:
    """Every account with its role, when it last logged in and how many sessions and app tokens
    it has open.

    Tags: users
    """
    return web.json_response([_public(u) for u in await administration.list_accounts(_auth(request))])


@requires(Scope.ADMIN)
@validated
async def create_user(request: web.Request, body: NewUser) -> r201[UserAccount]:
    """Add an account; its owner logs in with the name and password (and changes the password
    with POST /api/v1/auth/password).

    Tags: users
    Status Codes:
        201: the account
        400: a name with other characters, or a password of only spaces
        409: an account with this name exists (names compare without case)
    """
    made = await administration.create_account(_auth(request), principal(request), body.name, Role(body.role),
                                               body.password, address=_address(request))
    return web.json_response(_public(made), status=201)


@requires(Scope.ADMIN)
@validated
async def edit_user(request: web.Request, user_id: UserId, /, body: UserChanges) -> r200[UserAccount]:
    """Change an account's role. It takes effect on the account's next request.

    Tags: users
    Status Codes:
        200: the account
        404: no such account
        409: this would leave no admin (`last_admin`)
    """
    role = None if body.role is None else Role(body.role)
    changed = await administration.change_role(_auth(request), principal(request), user_id, role,
                                               address=_address(request))
    return web.json_response(_public(changed))


@requires(Scope.ADMIN)
@validated
async def reset_password(request: web.Request, user_id: UserId, /, body: PasswordReset) -> r204:
    """Set a new password for someone who forgot theirs. Every session of that account ends (its
    refresh tokens stop working) and so do its app tokens unless `keep_tokens` is true.

    Tags: users
    Status Codes:
        204: set; the account logs in with the new password
        400: a password of only spaces
        404: no such account
        409: your own account (`own_account`): use POST /api/v1/auth/password
    """
    await administration.reset_password(_auth(request), principal(request), user_id, body.password,
                                        keep_tokens=body.keep_tokens, address=_address(request))
    return web.Response(status=204)


@requires(Scope.ADMIN)
@validated
async def delete_user(request: web.Request, user_id: UserId, /) -> r200[Removed]:
    """Remove an account. Its sessions and app tokens end at once, its share links stop opening,
    and its albums stay, now owned by you. Photos are not touched.

    Tags: users
    Status Codes:
        200: removed; what ended and what was handed over
        404: no such account
        409: the last admin (`last_admin`), or your own account (`own_account`: another admin removes it)
    """
    ended = await administration.remove_account(_auth(request), principal(request), user_id,
                                                address=_address(request))
    return web.json_response(ended)


def setup_routes(web_app: web.Application, prefix: str) -> None:
    r = web_app.router
    r.add_get(f"{prefix}/users", list_users)
    r.add_post(f"{prefix}/users", create_user)
    r.add_patch(f"{prefix}/users/{{user_id}}", edit_user)
    r.add_post(f"{prefix}/users/{{user_id}}/password", reset_password)
    r.add_delete(f"{prefix}/users/{{user_id}}", delete_user)

"""Share links: the owner's routes (/api/v1/shares, `write` scope) and the guest's (/api/v1/s/{token}).

Guest routes are public in the access-policy sense (a guest has no account), but each one opens
nothing without a live share token, and then only what the link shares: every photo, thumbnail
and original is checked against the link's scope (daemon.auth.shares) before anything is read
from disk. Whatever is refused reads the same as what does not exist (404), so a guest cannot
learn which other photos or thumbnail keys the library holds.

A password-protected link answers 401 `password_required` until the guest posts the password to
/s/{token}/unlock, which returns a share session (1 hour) to send as `?s=` on every guest request
(a query parameter because <img> tags cannot send headers). Wrong passwords are limited like
logins (daemon.auth.limiter, counted before the hash is checked): per (link, address) with
backoff, per address, and per link a slow-down that still lets a guest with the right password
in. Guessing tokens is limited too: an address that asked for too many tokens that never
existed gets 429 on every guest route for a while (on every route, or the 429 itself would tell
a guessed token from an unknown one).
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime
from typing import Annotated, Any, Literal, Optional

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r201, r204
from pydantic import BaseModel, ConfigDict, Field

from daemon.api.access import principal, public, requires
from daemon.api.errors import ApiError, bad_request, not_found, validated
from daemon.api.keys import APP_KEY
from daemon.api.media import (SizeName, ThumbKey, check_thumbnail_request, send_photo_file,
                               send_thumbnail)
from daemon.api.photos import PhotoSummary, Uid
from daemon.app import App
from daemon.auth import passwords
from daemon.auth import shares as store
from daemon.auth.limiter import AddressLimiter, AttemptLimiter, Refused
from daemon.auth.roles import Role, Scope
from daemon.events import bus as ev
from daemon.search import SearchError
from daemon.store import photo_pages
from daemon.store.db import Stage

log = logging.getLogger(__name__)

ShareToken = Annotated[str, Field(min_length=20, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
                                  description="the share link's token")]
ShareId = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$", description="share link id")]
SessionParam = Field("", max_length=100, description="share session from /unlock (password-protected links)")
UNLOCK_LIMITER: web.AppKey[AttemptLimiter] = web.AppKey("share_unlock_limiter")
TOKEN_MISSES: web.AppKey[AddressLimiter] = web.AppKey("share_token_misses")
#: Wrong passwords for one link from one address before backoff; from one address over all links;
#: for one link over all addresses before the link's unlocks are slowed down; the window (s).
UNLOCK_PAIR_FAILURES, UNLOCK_ADDRESS_FAILURES, UNLOCK_LINK_FAILURES, GUEST_WINDOW = 5, 10, 20, 900
#: Tokens that never existed one address may ask for within GUEST_WINDOW.
TOKEN_MISSES_ALLOWED = 20
GUEST_ORDERS = ("newest", "oldest", "added")


class ShareBody(BaseModel):
    """A link to an album or to a selection of photos (exactly one of the two)."""

    model_config = ConfigDict(extra="forbid")
    album: Optional[str] = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
                                 description="the album's id")
    photos: Optional[list[Annotated[str, Field(min_length=1, max_length=64)]]] = Field(
        default=None, min_length=1, max_length=store.MAX_SELECTION, description="photo ids")
    title: Optional[str] = Field(default=None, max_length=500, description="default: the album's title")
    description: Optional[str] = Field(default=None, max_length=20000)
    expires_at: Optional[datetime] = Field(default=None, description="UTC if no offset is given; none: until revoked")
    password: Optional[str] = Field(default=None, min_length=8, max_length=1024,
                                    description="guests must give it once (then a 1 hour share session)")
    download: bool = Field(default=False, description="guests may download the originals")


class ShareOut(BaseModel):
    id: str
    kind: Literal["album", "selection"]
    album: Optional[str] = None
    title: str
    description: Optional[str] = None
    password: bool
    download: bool
    expires_at: Optional[str] = None
    views: int
    last_viewed_at: Optional[str] = None
    created_by: str
    created_at: str
    revoked_at: Optional[str] = None
    active: bool


class ShareCreated(ShareOut):
    token: str = Field(description="shown once; only its hash is kept")
    path: str = Field(description="the guest API path of the link")


class ShareUpdate(BaseModel):
    """Only the fields sent change; null removes a title, description, expiry or password."""

    model_config = ConfigDict(extra="forbid")
    title: Optional[str] = Field(default=None, max_length=500, description="null: the album's title again")
    description: Optional[str] = Field(default=None, max_length=20000)
    expires_at: Optional[datetime] = Field(default=None, description="null: until revoked")
    password: Optional[str] = Field(default=None, min_length=8, max_length=1024,
                                    description="a new password (guests must give it again); null: none")
    download: Optional[bool] = Field(default=None, description="guests may download the originals")


class UnlockBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str = Field(min_length=1, max_length=1024)


class Unlocked(BaseModel):
    session: str = Field(description="send as ?s= on the link's requests")
    expires_in: int


class SharedPage(BaseModel):
    title: str
    description: Optional[str] = None
    kind: str
    download: bool
    expires_at: Optional[str] = None
    photos: list[PhotoSummary]
    next_cursor: Optional[str] = None


class SharedPhoto(PhotoSummary):
    description: Optional[str] = None


def _app(request: web.Request) -> App:
    return request.app[APP_KEY]


def _api_error(exc: store.ShareError) -> ApiError:
    details = exc.details if exc.details is not None else ({"field": exc.field} if exc.field else None)
    if exc.field and isinstance(details, dict):
        details.setdefault("field", exc.field)
    return ApiError(exc.status, exc.code, exc.message, details)


def _owner_filter(request: web.Request) -> int | None:
    """Admins manage every link; anyone else only their own."""
    who = principal(request)
    return None if who.role is Role.ADMIN else who.user_id


# -- the owner's routes ---------------------------------------------------------------------------


@requires(Scope.WRITE)
@validated
async def create_share(request: web.Request, body: ShareBody) -> r201[ShareCreated]:
    """Make a share link for an album or a selection of photos. The token is shown once; a
    guest opens /api/v1/s/{token}. Private and archived photos are never shown to guests.

    Tags: shares
    Status Codes:
        201: the link; keep its token
        400: neither or both of album and photos, an unknown photo, an expiry in the past
        404: no such album
    """
    app = _app(request)
    assert app.db is not None and app.auth is not None
    who = principal(request)
    expires = None
    if body.expires_at is not None:
        try:
            expires = store.expiry_text(body.expires_at)
        except store.ShareError as exc:
            raise _api_error(exc) from None
    hashed = None
    if body.password is not None:
        try:
            hashed = await app.auth.hash_in_thread(passwords.hash_password, body.password)
        except passwords.WeakPassword as exc:
            raise bad_request(str(exc), "password") from None

    def create(conn: sqlite3.Connection, stage: Stage) -> tuple[store.Share, str]:
        share, token = store.create_share(conn, user_id=who.user_id, album_uid=body.album, photo_uids=body.photos,
                                          title=body.title, description=body.description, expires_at=expires,
                                          password_hash=hashed, download=body.download)
        # never the token: whoever reads events must not be able to open the link
        stage(ev.SHARE_CREATED, {"share": share.uid, "kind": share.kind, "album": share.album_uid,
                                 "title": share.title, "user": who.username, "expires_at": expires,
                                 "password": hashed is not None})
        return share, token

    try:
        share, token = await app.db.write_staged(create)
    except store.ShareError as exc:
        raise _api_error(exc) from None
    log.info("%s made share link %s (%s)", who.username, share.uid, share.kind)
    return web.json_response({**share.owner_view(), "token": token, "path": f"/api/v1/s/{token}"}, status=201)


@requires(Scope.WRITE)
@validated
async def list_shares(request: web.Request) -> r200[list[ShareOut]]:
    """Your share links (an admin sees everyone's), newest first, revoked and expired ones included.

    Tags: shares
    """
    app = _app(request)
    assert app.db is not None
    owner = _owner_filter(request)
    found = await app.db.read(lambda c: store.list_shares(c, user_id=owner))
    return web.json_response([s.owner_view() for s in found])


@requires(Scope.WRITE)
@validated
async def get_share(request: web.Request, share_id: ShareId, /) -> r200[ShareOut]:
    """One of your share links (views, expiry, whether it is still active).

    Tags: shares
    """
    app = _app(request)
    assert app.db is not None
    owner = _owner_filter(request)
    try:
        share = await app.db.read(lambda c: store.get_share(c, share_id, user_id=owner))
    except store.ShareError as exc:
        raise _api_error(exc) from None
    return web.json_response(share.owner_view())


@requires(Scope.WRITE)
@validated
async def update_share(request: web.Request, share_id: ShareId, /, body: ShareUpdate) -> r200[ShareOut]:
    """Change a link without changing its URL: title, description, expiry, password, downloads.
    A new or removed password makes every guest give the password again.

    Tags: shares
    Status Codes:
        200: the link as it is now
        400: an expiry in the past, a weak password, download set to null
        404: no such link (or not yours)
        409: the link was revoked
    """
    app = _app(request)
    assert app.db is not None and app.auth is not None
    sent = body.model_fields_set
    changes: dict[str, Any] = {}
    try:
        if "title" in sent:
            changes["title"] = body.title
        if "description" in sent:
            changes["description"] = body.description
        if "expires_at" in sent:
            changes["expires_at"] = None if body.expires_at is None else store.expiry_text(body.expires_at)
    except store.ShareError as exc:
        raise _api_error(exc) from None
    if "download" in sent:
        if body.download is None:
            raise bad_request("download is true or false", "download")
        changes["download"] = body.download
    if "password" in sent:
        if body.password is None:
            changes["password_hash"] = None
        else:
            try:
                changes["password_hash"] = await app.auth.hash_in_thread(passwords.hash_password, body.password)
            except passwords.WeakPassword as exc:
                raise bad_request(str(exc), "password") from None
    owner = _owner_filter(request)
    try:
        share = await app.db.write(lambda c: store.update_share(c, share_id, user_id=owner, **changes))
    except store.ShareError as exc:
        raise _api_error(exc) from None
    log.info("%s changed share link %s: %s", principal(request).username, share_id, ", ".join(sorted(sent)) or "nothing")
    return web.json_response(share.owner_view())


@requires(Scope.WRITE)
@validated
async def revoke_share(request: web.Request, share_id: ShareId, /) -> r204:
    """Revoke a share link: it stops working at once, password sessions included.

    Tags: shares
    """
    app = _app(request)
    assert app.db is not None
    owner = _owner_filter(request)
    try:
        await app.db.write(lambda c: store.revoke_share(c, share_id, user_id=owner))
    except store.ShareError as exc:
        raise _api_error(exc) from None
    return web.Response(status=204)


# -- the guest's routes ---------------------------------------------------------------------------


NO_LINK = "no such share link (it may have expired or been revoked)"
UNLOCK_REFUSALS = {
    "address": "too many wrong passwords from this address",
    "pair": "too many wrong passwords for this link from this address",
    "target": "this link is receiving many wrong passwords, so its unlocks are slowed down",
}


def _too_many(wait: int, message: str) -> ApiError:
    return ApiError(429, "too_many_attempts", f"{message}; try again in {wait} s", {"retry_after": wait},
                    {"Retry-After": str(wait)})


async def _find(request: web.Request, token: str) -> tuple[store.Share, str | None]:
    """The live link of a token and its password hash; 404 if none, 429 for an address that has
    asked for too many tokens that never existed (checked first, whatever the token)."""
    app = _app(request)
    assert app.db is not None
    misses = request.app[TOKEN_MISSES]
    address = request.remote or "?"
    wait = misses.retry_after(address)
    if wait:
        raise _too_many(wait, "too many unknown share links from this address")
    found = await app.db.read(lambda c: store.active_share(c, token))
    if found is None:
        if not await app.db.read(lambda c: store.token_known(c, token)):
            misses.failed(address)
        raise not_found(NO_LINK)
    return found


async def _open(request: web.Request, token: str, session: str) -> store.Share:
    """The link this token opens right now, with its password given; refused otherwise."""
    app = _app(request)
    assert app.db is not None
    found = await _find(request, token)
    share, password_hash = found
    if password_hash is not None:
        ok = bool(session) and await app.db.read(lambda c: store.session_valid(c, share.id, session))
        if not ok:
            raise ApiError(401, "password_required",
                           "this link needs its password: POST it to /unlock, then send the session as ?s=")
    return share


@public
@validated
async def unlock(request: web.Request, token: ShareToken, /, body: UnlockBody) -> r200[Unlocked]:
    """Give a password-protected link's password; answers a share session for ?s=.

    Tags: shares
    Status Codes:
        200: the session
        401: wrong password
        404: no such link
        429: too many wrong passwords (or unknown links) from this address, or for this link; see Retry-After
    """
    app = _app(request)
    assert app.db is not None and app.auth is not None
    share, password_hash = await _find(request, token)
    if password_hash is None:
        raise bad_request("this link has no password; open it directly")
    try:  # counted before the hash is checked: parallel guesses get no more checks than allowed
        attempt = request.app[UNLOCK_LIMITER].begin(share.uid, request.remote or "?")
    except Refused as exc:
        raise _too_many(exc.retry_after, UNLOCK_REFUSALS[exc.reason]) from None
    try:
        ok = await app.auth.hash_in_thread(passwords.verify_password, password_hash, body.password)
    finally:
        attempt.failed()  # stays counted unless succeeded() below takes it back
    if not ok:
        raise ApiError(401, "wrong_password", "wrong password for this link")
    attempt.succeeded()
    session = await app.db.write(lambda c: store.new_session(c, share.id))
    return web.json_response({"session": session, "expires_in": store.SESSION_TTL})


@public
@validated
async def shared(request: web.Request, token: ShareToken, /, s: str = SessionParam,
                 cursor: Optional[str] = Field(None, max_length=1000),
                 limit: int = Field(100, ge=1, le=500),
                 order: Literal[GUEST_ORDERS] = "newest",  # type: ignore[valid-type]
                 ) -> r200[SharedPage]:
    """What a share link shows: its title and its photos, a page at a time (pass next_cursor as
    ?cursor=). Opening the first page counts a view.

    Tags: shares
    Status Codes:
        200: the page
        401: the link needs its password (see /unlock)
        404: no such link, or it has expired or been revoked
    """
    app = _app(request)
    assert app.db is not None
    share = await _open(request, token, s)

    def page(conn: sqlite3.Connection) -> dict[str, Any]:
        result = store.shared_page(conn, share, order=order, cursor=cursor or None, limit=limit)
        return {**share.guest_view(), "photos": photo_pages.summaries_by_id(conn, result.ids),
                "next_cursor": result.next_cursor}

    try:
        answer = await app.db.read(page)
    except SearchError as exc:
        raise ApiError(400, "bad_query", exc.message, {"field": exc.key}) from None
    if not cursor and request.method == "GET":
        def view(conn: sqlite3.Connection, stage: Stage) -> None:
            store.count_view(conn, share.id)
            stage(ev.SHARE_VIEWED, {"share": share.uid, "kind": share.kind, "album": share.album_uid,
                                    "title": share.title, "views": share.views + 1})

        await app.db.write_staged(view)
    return web.json_response(answer)


async def _shared_photo(request: web.Request, token: str, session: str, uid: str) -> tuple[store.Share, int]:
    app = _app(request)
    assert app.db is not None
    share = await _open(request, token, session)
    try:
        photo_id = await app.db.read(lambda c: store.shared_photo_id(c, share, uid))
    except SearchError as exc:  # the shared smart album's query cannot run (too expensive)
        raise ApiError(400, "bad_query", exc.message, {"field": exc.key}) from None
    if photo_id is None:
        raise not_found(f"no photo {uid!r}")
    return share, photo_id


@public
@validated
async def shared_photo(request: web.Request, token: ShareToken, uid: Uid, /, s: str = SessionParam) -> r200[SharedPhoto]:
    """One photo of the link (only if the link shows it).

    Tags: shares
    """
    app = _app(request)
    assert app.db is not None
    _, photo_id = await _shared_photo(request, token, s, uid)

    def read(conn: sqlite3.Connection) -> dict[str, Any] | None:
        found = photo_pages.summaries_by_id(conn, [photo_id])
        if not found:
            return None
        desc = conn.execute("SELECT description FROM photos WHERE id = ?", (photo_id,)).fetchone()
        return {**found[0], "description": desc[0] if desc else None}

    photo = await app.db.read(read)
    if photo is None:
        raise not_found(f"no photo {uid!r}")
    return web.json_response(photo)


@public
@validated
async def shared_original(request: web.Request, token: ShareToken, uid: Uid, /, s: str = SessionParam,
                          download: bool = False) -> r200[Any]:
    """The photo's original file, only if the link allows downloads (Range and ETag).

    Tags: shares
    Status Codes:
        200: the file
        403: this link does not allow downloads
    """
    share, _ = await _shared_photo(request, token, s, uid)
    if not share.download:
        raise ApiError(403, "forbidden", "this link does not allow downloading originals")
    return await send_photo_file(request, uid, None, download)


@public
@validated
async def shared_thumbnail(request: web.Request, token: ShareToken, thumb_key: ThumbKey, size: SizeName, /,
                           s: str = SessionParam) -> r200[Any]:
    """A thumbnail of a photo the link shows (made now if missing). Without downloads, no size
    larger than fit_1920 (the largest display thumbnail): fit_2560 and fit_3840 answer 403.

    Tags: shares
    Status Codes:
        200: the thumbnail
        403: a size larger than fit_1920 on a link without downloads
    """
    check_thumbnail_request(thumb_key, size)
    app = _app(request)
    assert app.db is not None
    share = await _open(request, token, s)
    if not store.guest_may_fetch(share, size):
        raise ApiError(403, "forbidden", f"this link does not allow downloads: sizes up to fit_1920 only, not {size}")
    try:
        shown = await app.db.read(lambda c: store.shares_thumb(c, share, thumb_key))
    except SearchError as exc:  # the shared smart album's query cannot run (too expensive)
        raise ApiError(400, "bad_query", exc.message, {"field": exc.key}) from None
    if not shown:
        raise not_found("no photo has this thumbnail key")
    return await send_thumbnail(request, thumb_key, size, {"Referrer-Policy": "no-referrer"})


def setup_routes(web_app: web.Application, prefix: str) -> None:
    web_app[UNLOCK_LIMITER] = AttemptLimiter(pair_free=UNLOCK_PAIR_FAILURES, address_failures=UNLOCK_ADDRESS_FAILURES,
                                             target_failures=UNLOCK_LINK_FAILURES, window=GUEST_WINDOW)
    web_app[TOKEN_MISSES] = AddressLimiter(TOKEN_MISSES_ALLOWED, GUEST_WINDOW)
    r = web_app.router
    r.add_post(f"{prefix}/shares", create_share)
    r.add_get(f"{prefix}/shares", list_shares)
    r.add_get(f"{prefix}/shares/{{share_id}}", get_share)
    r.add_patch(f"{prefix}/shares/{{share_id}}", update_share)
    r.add_delete(f"{prefix}/shares/{{share_id}}", revoke_share)
    r.add_get(f"{prefix}/s/{{token}}", shared)
    r.add_post(f"{prefix}/s/{{token}}/unlock", unlock)
    r.add_get(f"{prefix}/s/{{token}}/photos/{{uid}}", shared_photo)
    r.add_get(f"{prefix}/s/{{token}}/photos/{{uid}}/original", shared_original)
    r.add_get(f"{prefix}/s/{{token}}/t/{{thumb_key}}/{{size}}", shared_thumbnail)

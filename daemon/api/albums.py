"""Albums: hand-made (chosen photos, in a chosen order) and smart (a saved search).

The SQL lives in daemon.store.albums; these views validate, call it inside one transaction, and
announce `album.created` / `album.updated` on the event bus (data: `album` (id), `title`, `type`,
`change` and what changed). Deleting an album is an `album.updated` with `change: "deleted"`: the
documented event types stay two, and a receiver that tracks albums hears of it all the same.

Least privilege: an album belongs to the user who made it. Changing it (title, photos, order,
cover, query) or deleting it is for its owner and for admins; anyone else gets 403, checked
inside the same write transaction as the change.
"""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any, Literal, Optional

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r201, r204
from pydantic import BaseModel, ConfigDict, Field, model_validator

from daemon.api.access import principal, requires
from daemon.api.errors import ApiError, not_found, validated
from daemon.api.keys import APP_KEY
from daemon.api.photos import PhotoSummary, Uid
from daemon.app import App
from daemon.auth.roles import Principal, Role, Scope
from daemon.events import bus as ev
from daemon.search import MAX_QUERY_CHARS, SearchError
from daemon.store import albums as store
from daemon.store.albums import MAX_DESCRIPTION, MAX_TITLE, AlbumError
from daemon.store.db import Stage

AlbumUid = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="album id")]
PhotoIds = Annotated[list[Uid], Field(min_length=1, max_length=1000, description="photo ids")]


class Album(BaseModel):
    id: str
    type: Literal["album", "smart"]
    title: str
    description: Optional[str] = None
    query: Optional[str] = Field(default=None, description="smart albums: the search language")
    sort_order: Literal["position", "newest", "oldest", "added"]
    favorite: bool
    private: bool
    photo_count: Optional[int] = Field(description="null: a smart album that could not be counted within the"
                                                   " search time budget ([search] max_seconds)")
    cover: Optional[dict[str, Any]] = Field(default=None, description="the chosen cover, else the first photo"
                                            " (a photo summary, as in `photos`)")
    cover_chosen: bool
    created_at: str
    updated_at: str
    owner: Optional[str] = Field(default=None, description="the user who made it (may change it, as admins may);"
                                                            " null: admins only")


class AlbumPage(Album):
    photos: list[PhotoSummary]
    next_cursor: Optional[str] = Field(default=None, description="pass as ?cursor= for the next page")


class NewAlbum(BaseModel):
    """A hand-made album (optionally with photos), or a smart album when `query` is given."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=MAX_TITLE)
    description: Optional[str] = Field(default=None, max_length=MAX_DESCRIPTION)
    query: Optional[str] = Field(default=None, min_length=1, max_length=MAX_QUERY_CHARS,
                                 description="makes a smart album: label:cat year:2023")
    photos: list[Uid] = Field(default_factory=list, max_length=1000, description="photo ids to put in it")


class AlbumChanges(BaseModel):
    """Fields to change; a field left out stays as it is. `cover: null` goes back to the first photo."""

    model_config = ConfigDict(extra="forbid")
    title: Optional[str] = Field(default=None, min_length=1, max_length=MAX_TITLE)
    description: Optional[str] = Field(default=None, max_length=MAX_DESCRIPTION)
    cover: Optional[Uid] = Field(default=None, description="a photo id (of this album, for a hand-made one)")
    sort_order: Optional[Literal["position", "newest", "oldest", "added"]] = None
    query: Optional[str] = Field(default=None, min_length=1, max_length=MAX_QUERY_CHARS)
    favorite: Optional[bool] = None
    private: Optional[bool] = None

    @model_validator(mode="after")
    def _not_null(self) -> "AlbumChanges":
        for name in ("title", "sort_order", "query", "favorite", "private"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class PhotoIdsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: PhotoIds


class AddResult(BaseModel):
    added: list[str]
    already: list[str] = Field(description="were in the album already (left where they were)")
    missing: list[str] = Field(description="no such photo")


class RemoveResult(BaseModel):
    removed: list[str]
    not_in_album: list[str]
    missing: list[str]


class MoveBody(BaseModel):
    """Move `photo` right after `after` and/or right before `before` (photos of this album)."""

    model_config = ConfigDict(extra="forbid")
    photo: Uid
    after: Optional[Uid] = None
    before: Optional[Uid] = None

    @model_validator(mode="after")
    def _where(self) -> "MoveBody":
        if self.after is None and self.before is None:
            raise ValueError("give after, before, or both")
        return self


class MoveResult(BaseModel):
    photo: str
    position: float


def _app(request: web.Request) -> App:
    return request.app[APP_KEY]


def _api_error(exc: AlbumError) -> ApiError:
    if exc.status == 404:
        return not_found(str(exc))
    if exc.status == 403:
        return ApiError(403, "forbidden", str(exc))
    return ApiError(400, "bad_request", str(exc), {"field": exc.field} if exc.field else None)


def _editable(conn: sqlite3.Connection, uid: str, who: Principal) -> sqlite3.Row:
    """The album, if this caller may change it (its owner or an admin); AlbumError 403 otherwise."""
    row = store.album_row(conn, uid)
    if not store.may_edit(row, who.user_id, who.role is Role.ADMIN):
        owner = store.owner_name(conn, row)
        raise AlbumError(f"album {uid!r} belongs to {owner or 'the admins'}; only its owner or an admin"
                         " may change or delete it", 403)
    return row


async def _run(app: App, fn: Any, *, write: bool) -> Any:
    """A read, or a write that gets `(conn, stage)` and stages its events (Database.write_staged)."""
    assert app.db is not None
    try:
        return await (app.db.write_staged(fn) if write else app.db.read(fn))
    except AlbumError as exc:
        raise _api_error(exc) from None
    except SearchError as exc:
        raise ApiError(400, "bad_query", exc.message, {"field": exc.key, "value": exc.value}) from None


def _stage(stage: Stage, type: str, row: sqlite3.Row, change: str, **data: Any) -> None:
    """Stage an album event inside the transaction that made the change."""
    stage(type, {"album": row["uid"], "title": row["title"], "type": row["type"], "change": change, **data})


@requires(Scope.READ)
@validated
async def list_albums(request: web.Request, type: Optional[Literal["album", "smart"]] = None) -> r200[list[Album]]:
    """Every album, by title, with its photo count and cover (?type=album or smart for one kind).

    Tags: albums
    """
    return web.json_response(await _run(_app(request), lambda c: store.list_albums(c, type), write=False))


@requires(Scope.WRITE)
@validated
async def create_album(request: web.Request, body: NewAlbum) -> r201[Album]:
    """Make an album. With `query` it is a smart album: its photos are that search's results, and
    a query the search language cannot read answers 400 naming the bad filter.

    Tags: albums
    """
    app = _app(request)
    owner = principal(request).user_id

    def write(conn: sqlite3.Connection, stage: Stage) -> dict[str, Any]:
        row = store.create_album(conn, body.title, description=body.description, query=body.query,
                                 photo_uids=body.photos, owner=owner)
        out = store.album_dict(conn, row)
        _stage(stage, ev.ALBUM_CREATED, row, "created", photos=out["photo_count"])
        return out

    out = await _run(app, write, write=True)
    return web.json_response(out, status=201)


@requires(Scope.READ)
@validated
async def get_album(request: web.Request, uid: AlbumUid, /,
                    cursor: Optional[str] = Field(None, max_length=1000),
                    limit: int = Field(100, ge=1, le=500)) -> r200[AlbumPage]:
    """An album and a page of its photos in the album's order (archived and private photos left
    out, as everywhere); pass next_cursor as ?cursor= for the next page.

    Tags: albums
    """
    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        row = store.album_row(conn, uid)
        photos, next_cursor = store.album_photos(conn, row, cursor=cursor or None, limit=limit)
        return {**store.album_dict(conn, row), "photos": photos, "next_cursor": next_cursor}

    return web.json_response(await _run(_app(request), read, write=False))


@requires(Scope.WRITE)
@validated
async def change_album(request: web.Request, uid: AlbumUid, /, body: AlbumChanges) -> r200[Album]:
    """Rename, describe, choose the cover, the order, favorite/private, or a smart album's query.

    Tags: albums
    """
    app = _app(request)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    who = principal(request)

    def write(conn: sqlite3.Connection, stage: Stage) -> dict[str, Any]:
        _editable(conn, uid, who)
        row, changed = store.update_album(conn, uid, changes)
        if changed:
            _stage(stage, ev.ALBUM_UPDATED, row, "edited", fields=changed)
        return store.album_dict(conn, row)

    out = await _run(app, write, write=True)
    return web.json_response(out)


@requires(Scope.WRITE)
@validated
async def delete_album(request: web.Request, uid: AlbumUid, /) -> r204:
    """Delete an album. Its photos stay in the library.

    Tags: albums
    """
    app = _app(request)
    who = principal(request)

    def delete(conn: sqlite3.Connection, stage: Stage) -> None:
        _editable(conn, uid, who)
        row = store.delete_album(conn, uid)
        _stage(stage, ev.ALBUM_DELETED, row, "deleted")

    await _run(app, delete, write=True)
    return web.Response(status=204)


@requires(Scope.WRITE)
@validated
async def add_photos(request: web.Request, uid: AlbumUid, /, body: PhotoIdsBody) -> r200[AddResult]:
    """Add photos at the end of a hand-made album.

    Tags: albums
    """
    app = _app(request)

    def write(conn: sqlite3.Connection, stage: Stage) -> dict[str, Any]:
        _editable(conn, uid, principal(request))
        result = store.add_photos(conn, uid, body.ids)
        if result["added"]:
            _stage(stage, ev.ALBUM_UPDATED, store.album_row(conn, uid), "photos_added", photos=result["added"])
        return result

    result = await _run(app, write, write=True)
    return web.json_response(result)


@requires(Scope.WRITE)
@validated
async def remove_photos(request: web.Request, uid: AlbumUid, /, body: PhotoIdsBody) -> r200[RemoveResult]:
    """Take photos out of a hand-made album (they stay in the library).

    Tags: albums
    """
    app = _app(request)

    def write(conn: sqlite3.Connection, stage: Stage) -> dict[str, Any]:
        _editable(conn, uid, principal(request))
        result = store.remove_photos(conn, uid, body.ids)
        if result["removed"]:
            _stage(stage, ev.ALBUM_UPDATED, store.album_row(conn, uid), "photos_removed", photos=result["removed"])
        return result

    result = await _run(app, write, write=True)
    return web.json_response(result)


@requires(Scope.WRITE)
@validated
async def move_photo(request: web.Request, uid: AlbumUid, /, body: MoveBody) -> r200[MoveResult]:
    """Reorder: move one photo of a hand-made album between two others (or to just after or
    before one). Only that photo's position changes.

    Tags: albums
    """
    app = _app(request)

    def write(conn: sqlite3.Connection, stage: Stage) -> float:
        _editable(conn, uid, principal(request))
        position = store.move_photo(conn, uid, body.photo, after=body.after, before=body.before)
        _stage(stage, ev.ALBUM_UPDATED, store.album_row(conn, uid), "photos_moved", photos=[body.photo])
        return position

    position = await _run(app, write, write=True)
    return web.json_response({"photo": body.photo, "position": position})


def setup_routes(web_app: web.Application, prefix: str) -> None:
    r = web_app.router
    r.add_get(f"{prefix}/albums", list_albums)
    r.add_post(f"{prefix}/albums", create_album)
    r.add_get(f"{prefix}/albums/{{uid}}", get_album)
    r.add_patch(f"{prefix}/albums/{{uid}}", change_album)
    r.add_delete(f"{prefix}/albums/{{uid}}", delete_album)
    r.add_post(f"{prefix}/albums/{{uid}}/photos", add_photos)
    r.add_post(f"{prefix}/albums/{{uid}}/photos/remove", remove_photos)
    r.add_post(f"{prefix}/albums/{{uid}}/photos/move", move_photo)

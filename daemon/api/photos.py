"""Photos: list, one photo, edit, batch edit, archive and restore, delete (admin, explicit).

Edits go through daemon.store.photo_edits, which marks every edited field as a manual source so
that no re-index overwrites it. The library folder is treated as read-only: the only way a file
is deleted through the API is DELETE with ?delete_files=true by an admin.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from daemon.api.access import principal, requires
from daemon.api.errors import ApiError, bad_request, not_found, validated
from daemon.api.keys import APP_KEY
from daemon.app import App
from daemon.auth.roles import Role, Scope
from daemon.events import bus as ev
from daemon.search import FACETS, MAX_QUERY_CHARS, ORDERS, SearchError, search
from daemon.store import photo_edits, photo_pages
from daemon.store.db import Stage

log = logging.getLogger(__name__)

Uid = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="photo id")]


class PhotoSummary(BaseModel):
    id: str
    type: str
    taken_at: Optional[str] = None
    taken_offset: Optional[int] = None
    title: Optional[str] = None
    width: Optional[int] = None
    height: Optional[int] = None
    thumb_key: Optional[str] = None
    placeholder: Optional[str] = None
    main_color: Optional[str] = None
    duration: Optional[float] = None
    rating: Optional[int] = None
    favorite: bool
    private: bool
    archived: bool
    offline: bool
    added_at: str


class PhotoPage(BaseModel):
    photos: list[PhotoSummary]
    next_cursor: Optional[str] = Field(default=None, description="pass as ?cursor= for the next page; null at the end")
    order: str
    facets: dict[str, list[dict[str, Any]]] = Field(description="counts per facet asked for with ?facets=")


class PhotoDetail(BaseModel):
    """Every field of `shoebox export --json` plus labels, faces and albums (see README)."""

    model_config = ConfigDict(extra="allow")
    id: str
    files: list[dict[str, Any]]
    labels: list[dict[str, Any]]
    faces: list[dict[str, Any]]
    albums: list[dict[str, Any]]


NOT_NULL = ("favorite", "private", "archived", "keywords")


class PhotoChanges(BaseModel):
    """Fields to change; a field left out stays as it is. Every change is kept as a manual edit,
    which no re-index overwrites. `lat` and `lng` go together; both null removes the location."""

    model_config = ConfigDict(extra="forbid")
    title: Optional[str] = Field(default=None, max_length=500)
    description: Optional[str] = Field(default=None, max_length=20000)
    taken_at: Optional[str] = Field(default=None, description="local time where it was taken: 2024-07-05T15:30:00",
                                    pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")
    taken_offset: Optional[int] = Field(default=None, ge=-840, le=840, description="minutes east of UTC")
    lat: Optional[float] = Field(default=None, ge=-90, le=90)
    lng: Optional[float] = Field(default=None, ge=-180, le=180)
    keywords: Optional[list[str]] = Field(default=None, max_length=200)
    rating: Optional[int] = Field(default=None, ge=0, le=5)
    favorite: Optional[bool] = None
    private: Optional[bool] = None
    archived: Optional[bool] = None

    @field_validator("taken_at")
    @classmethod
    def _real_date(cls, v: Optional[str]) -> Optional[str]:
        if v is None:
            return v
        try:
            parsed = datetime.fromisoformat(v)
        except ValueError:
            raise ValueError("not a real date and time") from None
        if not 1800 <= parsed.year <= 2200:
            raise ValueError("year must be between 1800 and 2200")
        return parsed.strftime("%Y-%m-%dT%H:%M:%S")

    @field_validator("keywords")
    @classmethod
    def _short_words(cls, v: Optional[list[str]]) -> Optional[list[str]]:
        if v is not None and any(len(w) > 100 for w in v):
            raise ValueError("each keyword must have at most 100 characters")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "PhotoChanges":
        given = self.model_fields_set
        for name in NOT_NULL:
            if name in given and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        if ("lat" in given) != ("lng" in given) or (self.lat is None) != (self.lng is None):
            raise ValueError("lat and lng must be given together (both null removes the location)")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[str] = Field(min_length=1, max_length=1000, description="photo ids")
    changes: PhotoChanges


class BatchResult(BaseModel):
    updated: int
    missing: list[str]


class DeleteResult(BaseModel):
    deleted_files: list[str]


def _app(request: web.Request) -> App:
    return request.app[APP_KEY]


async def _apply(app: App, uids: list[str], changes: dict[str, Any]) -> tuple[int, list[str]]:
    """Look up the place for a new location (in the pool), then write every photo in one transaction."""
    place: Any = photo_edits.UNSET
    if "lat" in changes:
        place = None
        if changes["lat"] is not None and app.places is not None and app.pool is not None:
            place = await app.pool.run(app.places.lookup, changes["lat"], changes["lng"])

    def write(conn: sqlite3.Connection, stage: Stage) -> tuple[int, list[str]]:
        ids = photo_edits.photo_ids(conn, uids)
        for uid in uids:
            if uid in ids:
                was_archived = bool(conn.execute("SELECT archived FROM photos WHERE id = ?", (ids[uid],)).fetchone()[0])
                photo_edits.edit_photo(conn, ids[uid], changes, place=place)
                _stage_edit(stage, uid, changes, was_archived)
        return len(ids), [u for u in uids if u not in ids]

    assert app.db is not None
    return await app.db.write_staged(write)


def _stage_edit(stage: Stage, uid: str, changes: dict[str, Any], was_archived: bool) -> None:
    """The events of one photo's edit, in its transaction: `photo.archived` when it was archived,
    `photo.updated` naming the fields for everything else (a restore is `archived` going false)."""
    fields = sorted({"location" if name in ("lat", "lng") else name for name in changes})
    if "archived" in changes and bool(changes["archived"]) == was_archived:
        fields.remove("archived")  # archiving an archived photo changes nothing
    elif "archived" in changes and changes["archived"]:
        fields.remove("archived")
        stage(ev.PHOTO_ARCHIVED, {"photo": uid})
    if fields:
        stage(ev.PHOTO_UPDATED, {"photo": uid, "changes": fields, "archived": bool(changes.get("archived", was_archived))})


@requires(Scope.READ)
@validated
async def list_photos(request: web.Request,
                      q: str = Field("", max_length=MAX_QUERY_CHARS, description="the search language: label:cat year:2023"),
                      order: Literal[ORDERS] = "newest",  # type: ignore[valid-type]
                      cursor: Optional[str] = Field(None, max_length=1000),
                      limit: int = Field(100, ge=1, le=500),
                      facets: str = Field("", max_length=200, description="comma-separated: " + ", ".join(FACETS))
                      ) -> r200[PhotoPage]:
    """Search or list photos, a page at a time: pass the answer's next_cursor as ?cursor= (with the
    same q and order) for the next page. Archived and private photos only when the query asks for
    them (archived:yes, private:yes). An unknown filter or a bad value answers 400 naming it.

    Tags: photos
    """
    app = _app(request)
    assert app.db is not None
    wanted = [f.strip() for f in facets.split(",") if f.strip()]

    def run(conn: sqlite3.Connection) -> dict[str, Any]:
        page = search(conn, q, order=order, limit=limit, cursor=cursor or None, facets=wanted)
        return {"photos": photo_pages.summaries_by_id(conn, page.ids), "next_cursor": page.next_cursor,
                "order": page.order, "facets": page.facets}

    try:
        return web.json_response(await app.db.read(run))
    except SearchError as exc:
        raise ApiError(400, "bad_query", exc.message, {"field": exc.key, "value": exc.value}) from None


@requires(Scope.READ)
@validated
async def get_photo(request: web.Request, uid: Uid, /) -> r200[PhotoDetail]:
    """One photo with all its metadata, files, labels, faces, place and albums.

    Tags: photos
    """
    app = _app(request)
    assert app.db is not None
    detail = await app.db.read(lambda c: photo_pages.photo_detail(c, uid))
    if detail is None:
        raise not_found(f"no photo {uid!r}")
    return web.json_response(detail)


@requires(Scope.WRITE)
@validated
async def edit_photo(request: web.Request, uid: Uid, /, body: PhotoChanges) -> r200[PhotoDetail]:
    """Change a photo's title, description, date, location, keywords, rating or flags. Edited
    fields are kept as manual edits: a re-index never overwrites them.

    Tags: photos
    """
    app = _app(request)
    updated, _ = await _apply(app, [uid], body.changes())
    if not updated:
        raise not_found(f"no photo {uid!r}")
    assert app.db is not None
    return web.json_response(await app.db.read(lambda c: photo_pages.photo_detail(c, uid)))


@requires(Scope.WRITE)
@validated
async def batch_edit(request: web.Request, body: BatchBody) -> r200[BatchResult]:
    """Apply the same changes to many photos at once (in one transaction).

    Tags: photos
    """
    uids = list(dict.fromkeys(body.ids))
    updated, missing = await _apply(_app(request), uids, body.changes.changes())
    return web.json_response({"updated": updated, "missing": missing})


@requires(Scope.WRITE)
@validated
async def archive(request: web.Request, uid: Uid, /) -> r200[PhotoDetail]:
    """Archive a photo: hidden from the normal views, its files untouched.

    Tags: photos
    """
    return await _set_archived(request, uid, True)


@requires(Scope.WRITE)
@validated
async def restore(request: web.Request, uid: Uid, /) -> r200[PhotoDetail]:
    """Bring an archived photo back.

    Tags: photos
    """
    return await _set_archived(request, uid, False)


async def _set_archived(request: web.Request, uid: str, value: bool) -> web.Response:
    app = _app(request)
    updated, _ = await _apply(app, [uid], {"archived": value})
    if not updated:
        raise not_found(f"no photo {uid!r}")
    assert app.db is not None
    return web.json_response(await app.db.read(lambda c: photo_pages.photo_detail(c, uid)))


@requires(Scope.ADMIN)
@validated
async def delete_photo(request: web.Request, uid: Uid, /, delete_files: bool = False) -> r200[DeleteResult]:
    """Delete a photo's original files from the library, and the photo. Admins only, and only
    with ?delete_files=true: without it nothing happens (archive the photo instead).

    Tags: photos
    Status Codes:
        200: the files are deleted
        400: delete_files=true was not given
        409: some files could not be deleted (read-only library?); nothing was forgotten
    """
    who = principal(request)
    if who.role is not Role.ADMIN:
        raise ApiError(403, "forbidden", "only an admin can delete original files")
    if not delete_files:
        raise bad_request("deleting a photo deletes its original files: pass ?delete_files=true to confirm, "
                          "or archive it instead", "delete_files")
    app = _app(request)
    assert app.db is not None and app.pool is not None
    row = await app.db.read(lambda c: photo_pages.photo_row(c, uid))
    if row is None:
        raise not_found(f"no photo {uid!r}")
    files = await app.db.read(lambda c: photo_pages.photo_files(c, row["id"]))
    root = app.library

    def unlink_all() -> tuple[list[tuple[int, str]], list[dict[str, str]]]:
        done, failed = [], []
        for f in files:
            path = library_path(root, bytes(f["path"]))
            if not app.gate.allows_target(path.parent):  # a folder swapped for a link to elsewhere
                failed.append({"path": f["path_text"], "error": "refused: its folder leads outside the library"})
                continue
            try:
                path.unlink()
                done.append((f["id"], f["path_text"]))
            except FileNotFoundError:
                done.append((f["id"], f["path_text"]))
            except OSError as exc:
                failed.append({"path": f["path_text"], "error": exc.strerror or str(exc)})
        return done, failed

    done, failed = await app.pool.run(unlink_all)

    def forget(conn: sqlite3.Connection) -> None:
        conn.executemany("DELETE FROM files WHERE id = ?", [(i,) for i, _ in done])
        if not failed:
            conn.execute("DELETE FROM photos WHERE id = ?", (row["id"],))

    await app.db.write(forget)
    log.warning("%s deleted photo %s: %s", who.username, uid, ", ".join(p for _, p in done) or "no files")
    if failed:
        raise ApiError(409, "delete_failed", f"{len(failed)} file(s) could not be deleted", {"failed": failed})
    return web.json_response({"deleted_files": [p for _, p in done]})


def library_path(root: Path, rel: bytes) -> Path:
    """The absolute path of a stored relative path, refusing any that would leave the library.

    Paths come from the index, never from a client, but a corrupted or hand-edited database
    must still not turn into a way to read /etc/passwd."""
    rel_text = os.fsdecode(rel)
    parts = Path(rel_text).parts
    if not rel_text or Path(rel_text).is_absolute() or ".." in parts:
        raise ApiError(404, "not_found", "file is not inside the library")
    return Path(root) / rel_text


def setup_routes(web_app: web.Application, prefix: str) -> None:
    r = web_app.router
    r.add_get(f"{prefix}/photos", list_photos)
    r.add_post(f"{prefix}/photos/batch", batch_edit)
    r.add_get(f"{prefix}/photos/{{uid}}", get_photo)
    r.add_patch(f"{prefix}/photos/{{uid}}", edit_photo)
    r.add_delete(f"{prefix}/photos/{{uid}}", delete_photo)
    r.add_post(f"{prefix}/photos/{{uid}}/archive", archive)
    r.add_post(f"{prefix}/photos/{{uid}}/restore", restore)

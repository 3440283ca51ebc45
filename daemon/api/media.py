"""Bytes: original files (Range and ETag) and thumbnails (immutable, made on demand, hot ones from memory).

Files are always found by id (a photo id and a file's index, or a thumbnail's content hash and
a size name checked against the known sizes), never by a path a client sends, so no request
can name a file outside the library or the thumbnail folder. And what the stored path leads to
is checked again when it is opened (daemon.library.gate): a photo replaced by a link to
/etc/passwd after it was indexed is refused (403), and what is sent is the very file that was
checked (by its /proc/self/fd name), not whatever the name leads to a moment later.

Thumbnails are named by content hash and encoder settings, so a name's bytes never change: they
are sent with `Cache-Control: private, max-age=31536000, immutable` ("private" rather than
"public" because they need credentials: a shared proxy must not keep them for others). <img>
tags cannot send headers, so these routes also accept `?t=<thumbnail token>`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200
from pydantic import Field

from daemon.api.access import requires
from daemon.api.errors import ApiError, bad_request, not_found, validated
from daemon.api.keys import APP_KEY
from daemon.api.thumbnails import ThumbnailRequestError, ThumbnailService, check_request
from daemon.api.photos import Uid
from daemon.app import App
from daemon.auth.roles import Scope
from daemon.library.decode import DecodeError
from daemon.library.formats import Kind
from daemon.library.gate import Opened, OutsideLibrary
from daemon.library.render import derive_size, render_size
from daemon.library.thumbnails import ALL_SIZES, DERIVED_SIZES

log = logging.getLogger(__name__)

IMMUTABLE = "private, max-age=31536000, immutable"
ThumbKey = Annotated[str, Field(min_length=8, max_length=128, pattern=r"^[0-9a-f]+$",
                                description="the photo's thumb_key (content hash)")]
SizeName = Literal[tuple(ALL_SIZES)]  # type: ignore[valid-type]  # an enum in the OpenAPI document
FileIndex = Annotated[int, Field(ge=0, le=10000, description="index in the photo's `files` list")]
THUMBNAILS: web.AppKey[ThumbnailService] = web.AppKey("thumbnails")
MAX_CACHED_THUMB = 512 * 1024  # bigger files (a fit_1920 of a busy photo) go out with sendfile


def _app(request: web.Request) -> App:
    return request.app[APP_KEY]


# -- originals ----------------------------------------------------------------------------------------


class GatedFileResponse(web.FileResponse):
    """aiohttp's FileResponse (Range, ETag, sendfile) of a file the gate opened: it reopens the
    open file through /proc/self/fd, so a link swapped in after the check changes nothing."""

    def __init__(self, opened: Opened, **kwargs: Any) -> None:
        super().__init__(opened.proc_path, **kwargs)
        self._opened = opened

    async def prepare(self, request: web.BaseRequest) -> Any:
        try:
            return await super().prepare(request)
        finally:
            self._opened.close()


async def open_library_file(app: App, rel: bytes, shown: str) -> Opened:
    """Open a stored library path through the gate (off the event loop): 403 for one that leads
    outside the library, 404 for one that is not there."""
    try:
        return await asyncio.get_running_loop().run_in_executor(None, app.gate.open, rel)
    except OutsideLibrary as exc:
        raise ApiError(403, "forbidden", f"{shown} is not served: {exc.reason}") from None
    except OSError:
        raise ApiError(404, "offline", f"{shown} is not on disk") from None


async def send_photo_file(request: web.Request, uid: str, index: int | None, download: bool) -> web.StreamResponse:
    app = _app(request)
    assert app.db is not None

    def find(conn: sqlite3.Connection) -> sqlite3.Row | None:
        photo = conn.execute("SELECT id, primary_file_id FROM photos WHERE uid = ? AND primary_file_id IS NOT NULL",
                             (uid,)).fetchone()
        if photo is None:
            return None
        if index is None:
            return conn.execute("SELECT * FROM files WHERE id = ?", (photo["primary_file_id"],)).fetchone()
        rows = conn.execute("SELECT * FROM files WHERE photo_id = ? ORDER BY id LIMIT 1 OFFSET ?",
                            (photo["id"], index)).fetchall()
        return rows[0] if rows else None

    f = await app.db.read(find)
    if f is None:
        raise not_found(f"no photo {uid!r}" if index is None else f"photo {uid!r} has no file {index}")
    if f["offline"]:
        raise ApiError(404, "offline", f"{f['path_text']} is offline (its drive or folder is not there)")
    opened = await open_library_file(app, bytes(f["path"]), f["path_text"])
    name = opened.name
    disposition = "attachment" if download else "inline"
    headers = {
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name, safe='')}",
        "Cache-Control": "private, no-cache",
        "X-Content-Type-Options": "nosniff",
        # an original is shown, never run: no scripts even if a file claims to be HTML or SVG
        "Content-Security-Policy": "sandbox; default-src 'none'",
    }
    headers["Content-Type"] = f["mime"] or "application/octet-stream"
    return GatedFileResponse(opened, headers=headers)


@requires(Scope.READ)
@validated
async def original(request: web.Request, uid: Uid, /, download: bool = False) -> r200[Any]:
    """The photo's original file (the primary one), with Range requests and ETag.

    Tags: files
    """
    return await send_photo_file(request, uid, None, download)


@requires(Scope.READ)
@validated
async def file_by_index(request: web.Request, uid: Uid, index: FileIndex, /, download: bool = False) -> r200[Any]:
    """One of the photo's files (RAW, Live Photo video, sidecar) by its index in `files`.

    Tags: files
    """
    return await send_photo_file(request, uid, index, download)


# -- thumbnails --------------------------------------------------------------------------------------


async def _render_missing(app: App, key: str, size: str) -> Path:
    """Make a missing size from the photo's primary file, in the worker pool (a grid size from
    its larger thumbnail when that is on disk: no need for the original, even offline)."""
    assert app.db is not None and app.pool is not None and app.indexer is not None
    settings = app.indexer.settings
    if size in DERIVED_SIZES:
        derived = await app.pool.run(lambda: derive_size(app.thumbs, key, size, settings))
        if derived is not None:
            return derived
    f = await app.db.read(lambda c: c.execute(
        "SELECT f.path, f.kind, f.offline FROM files f JOIN photos p ON p.primary_file_id = f.id"
        " WHERE f.sha1 = ? AND p.thumb_key = ? LIMIT 1", (key, key)).fetchone())
    if f is None:
        raise not_found("no photo has this thumbnail key")
    if f["offline"]:
        raise ApiError(404, "offline", "the photo's file is offline, so this size cannot be made now")
    kind = Kind(f["kind"])
    ix = app.indexer
    raw_preview = ix.raw_preview if kind is Kind.RAW else None

    def make() -> Path:
        with app.gate.pinned(bytes(f["path"])) as path:  # the photo's file, checked as it is opened
            return render_size(path, kind=kind, content_hash=key, thumbs_root=app.thumbs, settings=ix.settings,
                               limits=ix.limits, size=size, raw_preview=raw_preview, ffmpeg=ix.ffmpeg)

    try:
        return await app.pool.run(make)
    except (DecodeError, OSError) as exc:
        log.warning("could not make %s of %s: %s", size, key, exc)
        raise ApiError(404, "not_renderable", f"this size cannot be made: {exc}") from None


def check_thumbnail_request(thumb_key: str, size: str) -> None:
    """400 for a size or key the thumbnails cannot have (before any lookup or file access)."""
    try:
        check_request(thumb_key, size)
    except ThumbnailRequestError as exc:
        raise bad_request(str(exc), exc.field) from None


async def send_thumbnail(request: web.Request, thumb_key: str, size: str,
                         headers: dict[str, str] | None = None) -> web.StreamResponse:
    """A thumbnail answer: from memory when it is small (the common case), else with sendfile;
    304 when the client already has it. The caller has checked the request with
    check_thumbnail_request and decided the caller may see it."""
    thumb = await request.app[THUMBNAILS].get(thumb_key, size)
    all_headers = {"Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff", **(headers or {})}
    if thumb.body is None:
        return web.FileResponse(thumb.path, headers=all_headers)
    all_headers["ETag"] = thumb.etag
    if thumb.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=all_headers)
    return web.Response(body=thumb.body, content_type=thumb.content_type, headers=all_headers)


@requires(Scope.THUMBNAILS, url_token=True)
@validated
async def thumbnail(request: web.Request, thumb_key: ThumbKey, size: SizeName, /,
                    t: str = Field("", max_length=2000, description="thumbnail token, for <img> tags")) -> r200[Any]:
    """A thumbnail by content hash and size name, made now if it is missing. Accepts the
    thumbnail token as ?t= so <img> tags can load it. The same answer, faster, comes from the
    thumbnail server on its own port (`server.thumbnail_port`, see /api/v1/status).

    Tags: files
    """
    check_thumbnail_request(thumb_key, size)
    return await send_thumbnail(request, thumb_key, size)


def setup_routes(web_app: web.Application, prefix: str) -> None:
    app = web_app[APP_KEY]
    assert app.indexer is not None
    web_app[THUMBNAILS] = ThumbnailService(
        app.thumbs, app.indexer.settings, lambda key, size: _render_missing(app, key, size),
        cache_bytes=app.config["server.thumbnail_cache_mib"] * 2**20, max_item=MAX_CACHED_THUMB)
    r = web_app.router
    r.add_get(f"{prefix}/photos/{{uid}}/original", original)
    r.add_get(f"{prefix}/photos/{{uid}}/files/{{index}}", file_by_index)
    r.add_get(f"{prefix}/t/{{thumb_key}}/{{size}}", thumbnail)

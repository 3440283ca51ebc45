"""Getting photos in: uploads (multipart, streamed to disk) and server-side imports of a folder.

Uploads are one of the two places Shoebox writes into the library (imports are the other): each
file goes to `<library>/<upload_folder>/<layout>/<its name>` (the layout's date is when the photo
was taken, by the indexer's metadata reader), or nowhere if its content is already in the
library. How a request flows, and why:

1. The body is read part by part in chunks of at most 1 MiB, each chunk hashed (SHA-1) and
   written to a hidden temporary file in `<upload_folder>/.shoebox-incoming/`: memory stays flat
   whatever the size. Limits: `max_upload_mib` per file, `max_request_mib` per request (413, and
   every file of the request is removed: a request is stored whole or not at all).
2. A file must have a photo/video extension Shoebox indexes AND first bytes that fit it (415).
3. Deduplicated by SHA-1 against the index and against uploads in progress: a known file is not
   stored again; the answer names the existing photo.
4. Renamed into place atomically (a hard link to a free name: an existing file is never
   replaced; a taken name gets `-1`, `-2`...), the folder scanned, the index jobs moved to the
   front of the queue, and the answer waits (up to `upload_wait` seconds) until they are indexed,
   so the app can show the photo as soon as the upload finishes: 201 with the photo ids. If
   indexing is stopped or slower than that, 202: the files are stored and queued, the photos follow.

Multipart parsing is done here, not by aiohttp-pydantic's injector: that one reads parts in a
fixed order and turns a malformed body into a 500. The view still documents its body in the
OpenAPI document through `_documented`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional, Union

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp_pydantic.oas.typing import r200, r201, r202, r409, r415, r507
from aiohttp_pydantic.uploaded_file import UploadedFile
from pydantic import BaseModel, ConfigDict, Field

from daemon.api.access import principal, requires
from daemon.api.errors import ApiError, ErrorBody, bad_request, not_found, validated
from daemon.api.keys import APP_KEY
from daemon.app import App
from daemon.auth.roles import Scope
from daemon.events import bus as ev
from daemon.library.exiftool import ExifTool
from daemon.listeners import subscription
from daemon.store.db import Stage
from daemon.library.import_runs import ImportBusy, ImportRefused
from daemon.library.importer import (SNIFF_BYTES, HashingWriter, NotMedia, check_content, check_layout,
                                     check_relative_folder, dated_folder, media_kind, place, remove_stale_temps,
                                     sanitize_name, taken_time, temp_path)

log = logging.getLogger(__name__)

MIB = 1024 * 1024
READ_CHUNK = 256 * 1024
WRITE_CHUNK = MIB
MAX_PARTS = 1000
FREE_SPACE_MARGIN = 64 * MIB
STAGING = ".shoebox-incoming"
PRIORITY_UPLOAD = 0  # before every other index job: someone is waiting for this photo


# -- state shared by the upload requests of one web app -------------------------------------------------

@dataclass
class UploadState:
    root_rel: str  # the upload folder, relative to the library
    layout: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    in_flight: dict[str, str] = field(default_factory=dict)  # sha1 -> library path, stored but not yet indexed
    # sha1 -> set once the upload that stored it has scanned it in (its file row exists): a
    # concurrent duplicate waits for this before it reads that row
    scanned: dict[str, asyncio.Event] = field(default_factory=dict)
    waiters: dict[int, list[asyncio.Future[None]]] = field(default_factory=dict)  # file id -> futures

    def on_stored(self, outcome: Any) -> None:
        """App listener: the indexer stored a file (in the event loop's thread)."""
        for fut in self.waiters.pop(outcome.file_id, []):
            if not fut.done():
                fut.set_result(None)


UPLOADS: web.AppKey[UploadState] = web.AppKey("shoebox_uploads")


@dataclass
class Staged:
    sent_name: str
    name: str
    writer: HashingWriter
    sha1: str = ""
    size: int = 0
    path: str | None = None  # where it was stored, relative to the library
    duplicate_of: str | None = None  # library path of the same content
    scanned: asyncio.Event | None = None  # for a duplicate of an upload still in flight


class UploadedItem(BaseModel):
    name: str = Field(description="the file name as sent")
    path: Optional[str] = Field(default=None, description="where it is in the library (the existing copy for a duplicate)")
    size: int
    sha1: str
    photo: Optional[str] = Field(default=None, description="the photo id, once indexed")
    state: Literal["indexed", "duplicate", "error", "queued"]
    duplicate: bool = Field(description="the content was already in the library; nothing new was stored")
    error: Optional[str] = Field(default=None, description="why indexing failed (the file is stored)")


class UploadAnswer(BaseModel):
    files: list[UploadedItem]


def _app(request: web.Request) -> App:
    return request.app[APP_KEY]


def _documented(doc: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a hand-parsed view the signature, docstring and return type of `doc`, which is what
    aiohttp-pydantic reads to write its OpenAPI operation (here: a multipart body)."""
    def mark(view: Callable[..., Any]) -> Callable[..., Any]:
        functools.update_wrapper(view, doc)
        view.is_aiohttp_pydantic_handler = True  # type: ignore[attr-defined]
        return view
    return mark


def _malformed(why: str) -> ApiError:
    return ApiError(400, "malformed_multipart", f"the multipart body cannot be read: {why}", {"field": "body"})


def _too_large(what: str, limit_mib: int) -> ApiError:
    return ApiError(413, "request_entity_too_large", f"{what} is larger than the limit of {limit_mib} MiB",
                    {"limit_bytes": limit_mib * MIB})


# -- the upload view -------------------------------------------------------------------------------------

async def _upload_doc(request: web.Request, file: UploadedFile) -> Union[
        r201[UploadAnswer], r202[UploadAnswer], r415[ErrorBody], r507[ErrorBody]]:
    """Upload photos and videos: `multipart/form-data` with one or more parts named `file`, each
    with a file name. Stored under the library's upload folder and indexed at once; a file whose
    content is already in the library is not stored again (`duplicate`, with its photo). 201 when
    every photo is indexed; 202 when some are stored but still queued (indexing stopped or busy).

    Tags: uploads
    Status Codes:
        201: stored and indexed (or already there)
        202: stored; indexing still queued
        400: not multipart, a malformed body, a part without a file name, an empty file
        413: a file or the whole request is larger than the limits
        415: not a photo or video type Shoebox knows, or content that does not fit its extension
        507: not enough free space in the library
    """
    raise NotImplementedError  # pragma: no cover - documentation only


async def _read_parts(request: web.Request, staging: Path, max_file: int, max_total: int,
                      limits_mib: tuple[int, int], staged: list[Staged]) -> None:
    """Stream every `file` part into its own temporary file (appended to `staged` as soon as it
    exists, so the caller can remove them all if anything goes wrong)."""
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, KeyError) as exc:
        raise _malformed(str(exc) or "no boundary") from None
    total = 0
    while True:
        try:
            part = await reader.next()
        except (ValueError, RuntimeError, AssertionError, HttpProcessingError, asyncio.IncompleteReadError) as exc:
            raise _malformed(str(exc) or type(exc).__name__) from None
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise _malformed("nested multipart bodies are not accepted")
        if len(staged) >= MAX_PARTS:
            raise bad_request(f"at most {MAX_PARTS} files per request", "file")
        if part.name != "file":
            raise bad_request(f"unexpected form field {part.name!r}: send each file as a part named `file`", "file")
        if not part.filename:
            raise bad_request("a `file` part has no file name (Content-Disposition: form-data; name=\"file\"; "
                              "filename=\"...\")", "file")
        name = sanitize_name(part.filename)
        try:
            media_kind(name)
        except NotMedia as exc:
            raise ApiError(415, "unsupported_media_type", str(exc), {"field": "file", "name": part.filename}) from None
        writer = await asyncio.to_thread(HashingWriter, temp_path(staging, "upload", Path(name).suffix))
        item = Staged(sent_name=part.filename, name=name, writer=writer)
        staged.append(item)
        buffer = bytearray()
        sniffed = False
        while True:
            try:
                chunk = await part.read_chunk(READ_CHUNK)
            except (ValueError, RuntimeError, AssertionError, HttpProcessingError, asyncio.IncompleteReadError) as exc:
                raise _malformed(str(exc) or type(exc).__name__) from None
            if not chunk:
                break
            item.size += len(chunk)
            total += len(chunk)
            if item.size > max_file:
                raise _too_large(f"{part.filename!r}", limits_mib[0])
            if total > max_total:
                raise _too_large("the request", limits_mib[1])
            buffer += chunk
            if not sniffed and len(buffer) >= SNIFF_BYTES:
                _sniff(name, part.filename, bytes(buffer[:SNIFF_BYTES]))
                sniffed = True
            if len(buffer) >= WRITE_CHUNK:
                # written and hashed in a thread: an SD card may stall a write for a long time
                await asyncio.to_thread(writer.write, bytes(buffer))
                buffer.clear()
        if item.size == 0:
            raise bad_request(f"{part.filename!r} is empty", "file")
        if not sniffed:
            _sniff(name, part.filename, bytes(buffer))
        if buffer:
            await asyncio.to_thread(writer.write, bytes(buffer))
        item.sha1 = await asyncio.to_thread(writer.finish)


def _sniff(name: str, sent: str, head: bytes) -> None:
    try:
        check_content(name, head)
    except NotMedia as exc:
        raise ApiError(415, "unsupported_media_type", str(exc), {"field": "file", "name": sent}) from None


async def _existing(app: App, sha1: str) -> str | None:
    """The library path of a file with this content, if the index knows one that is on disk."""
    assert app.db is not None
    return await app.db.scalar("SELECT path_text FROM files WHERE sha1 = ? AND offline = 0"
                               " ORDER BY (photo_id IS NULL), id LIMIT 1", (sha1,))


def _taken_folder(app: App, path: Path) -> Any:
    """Runs in the pool: when the staged photo was taken (the indexer's metadata reader)."""
    cfg = app.config
    assert app.pool is not None
    tool = app.pool.resource("exiftool", lambda: ExifTool(cfg["index.exiftool"], timeout=cfg["index.exiftool_timeout"]))
    return taken_time(path, tool, (), time.time())[0]


async def _store(app: App, state: UploadState, staged: list[Staged]) -> list[str]:
    """Deduplicate and rename each staged file into place; the folders that received files."""
    assert app.pool is not None
    seen: dict[str, str] = {}
    for item in staged:
        item.duplicate_of = seen.get(item.sha1) or await _existing(app, item.sha1)
    dates = {}
    for item in staged:
        if item.duplicate_of is None:
            dates[id(item)] = await app.pool.run(_taken_folder, app, item.writer.path)
    folders: list[str] = []
    async with state.lock:  # the dedup check and the rename are one step for concurrent uploads
        for item in staged:
            if item.duplicate_of is None:
                item.duplicate_of = seen.get(item.sha1) or state.in_flight.get(item.sha1) or await _existing(app, item.sha1)
                if item.sha1 in state.in_flight and item.sha1 not in seen:
                    item.scanned = state.scanned.get(item.sha1)
            if item.duplicate_of is not None:
                await asyncio.to_thread(item.writer.discard)
                continue
            rel_folder = "/".join(p for p in (state.root_rel, dated_folder(state.layout, dates[id(item)])) if p)
            folder = app.library / rel_folder

            def put(folder: Path = folder, item: Staged = item) -> Path:
                folder.mkdir(parents=True, exist_ok=True)
                return place(item.writer.path, folder, item.name)

            target = await asyncio.to_thread(put)
            item.path = f"{rel_folder}/{target.name}"
            seen[item.sha1] = item.path
            state.in_flight[item.sha1] = item.path
            state.scanned[item.sha1] = asyncio.Event()
            if rel_folder not in folders:
                folders.append(rel_folder)
    return folders


async def _wait_indexed(app: App, state: UploadState, paths: list[str], timeout: float,
                        uploaded: list[dict[str, Any]]) -> None:
    """Put the files' index jobs first in the queue and wait until they are stored (or timeout).
    The transaction that does so stages a `photo.uploaded` per stored file (`uploaded`): the files
    are in the library and scanned by then, and the event commits with their queued jobs."""
    assert app.db is not None and app.queue is not None
    raw = [os.fsencode(p) for p in paths]
    marks = ",".join("?" * len(raw))

    def bump(conn: sqlite3.Connection, stage: Stage) -> None:
        conn.execute(f"UPDATE jobs SET priority = ? WHERE kind = 'index' AND state = 'queued' AND file_id IN"
                     f" (SELECT id FROM files WHERE path IN ({marks}))", (PRIORITY_UPLOAD, *raw))
        for data in uploaded:
            stage(ev.PHOTO_UPLOADED, data)

    await app.db.write_staged(bump)
    app.queue.wake()
    rows = await app.db.fetchall(f"SELECT id, state FROM files WHERE path IN ({marks})", raw)
    loop = asyncio.get_running_loop()
    futures = []
    for row in rows:
        if row["state"] == "new":
            fut: asyncio.Future[None] = loop.create_future()
            state.waiters.setdefault(row["id"], []).append(fut)
            futures.append((row["id"], fut))
    # stored between the query and the registration? look once more now that nothing can be missed
    again = await app.db.fetchall(f"SELECT id, state FROM files WHERE path IN ({marks})", raw)
    done_ids = {r["id"] for r in again if r["state"] != "new"}
    for file_id, fut in futures:
        if file_id in done_ids and not fut.done():
            fut.set_result(None)
    pending = [f for _, f in futures if not f.done()]
    try:
        if pending and timeout > 0:
            await asyncio.wait(pending, timeout=timeout)
    finally:
        for file_id, fut in futures:
            waiting = state.waiters.get(file_id)
            if waiting and fut in waiting:
                waiting.remove(fut)
                if not waiting:
                    state.waiters.pop(file_id, None)


async def _describe(app: App, staged: list[Staged]) -> list[dict[str, Any]]:
    assert app.db is not None

    def rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
        out = []
        for item in staged:
            path = item.path or item.duplicate_of
            row = conn.execute(
                "SELECT f.state, f.error, coalesce(p.uid, d.uid) AS uid FROM files f"
                " LEFT JOIN photos p ON p.id = f.photo_id"
                " LEFT JOIN files df ON df.id = f.duplicate_of LEFT JOIN photos d ON d.id = df.photo_id"
                " WHERE f.path = ?", (os.fsencode(path),)).fetchone() if path else None
            if item.duplicate_of is not None:
                state = "duplicate"
            elif row is None or row["state"] == "new":
                state = "queued"
            elif row["state"] == "error":
                state = "error"
            else:
                state = "indexed"  # a duplicate found by the indexer itself is shown with its photo too
            out.append({"name": item.sent_name, "path": path, "size": item.size, "sha1": item.sha1,
                        "photo": row["uid"] if row is not None else None, "state": state,
                        "duplicate": item.duplicate_of is not None,
                        "error": row["error"] if row is not None and state == "error" else None})
        return out

    return await app.db.read(rows)


@requires(Scope.WRITE)
@_documented(_upload_doc)
async def upload(request: web.Request) -> web.StreamResponse:
    app = _app(request)
    cfg = app.config
    state = request.app[UPLOADS]
    if not request.content_type.startswith("multipart/form-data"):
        raise bad_request("send multipart/form-data with one or more parts named `file`", "body")
    max_file_mib, max_total_mib = cfg["import.max_upload_mib"], cfg["import.max_request_mib"]
    if request.content_length is not None and request.content_length > max_total_mib * MIB:
        raise _too_large("the request", max_total_mib)
    staging = app.library / state.root_rel / STAGING

    def prepare() -> int:
        staging.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(staging)
        return shutil.disk_usage(staging).free

    try:
        free = await asyncio.to_thread(prepare)
    except OSError as exc:
        raise ApiError(503, "library_not_writable",
                       f"cannot write into the upload folder {state.root_rel or '.'}: {exc.strerror or exc}") from None
    needed = (request.content_length or 0) + FREE_SPACE_MARGIN
    if free < needed:
        raise ApiError(507, "insufficient_storage", f"the library has {free // MIB} MiB free; this upload needs "
                       f"{needed // MIB} MiB", {"free_bytes": free})

    staged: list[Staged] = []
    try:
        await _read_parts(request, staging, max_file_mib * MIB, max_total_mib * MIB, (max_file_mib, max_total_mib),
                          staged)
        if not staged:
            raise bad_request("no files: send one or more parts named `file`", "file")
        folders = await _store(app, state, staged)
    finally:
        for item in staged:
            if item.path is None:  # not stored (an error, or a duplicate): never leave a temporary file
                await asyncio.to_thread(item.writer.discard)
    stored = [item for item in staged if item.path is not None]
    try:
        try:
            if folders:
                await app.scan(only=[os.fsencode(f) for f in folders])
        finally:
            for item in stored:
                if (event := state.scanned.pop(item.sha1, None)) is not None:
                    event.set()
        # a duplicate of another request's upload: wait until that one has made its file row
        pending = [item.scanned.wait() for item in staged if item.scanned is not None]
        if pending:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(cfg["import.upload_wait"]):
                    await asyncio.gather(*pending)
        waited_for = [p for p in {item.path or item.duplicate_of for item in staged} if p]
        paused = app.queue is not None and app.queue.paused
        who = principal(request)
        uploaded = [{"path": item.path, "name": item.sent_name, "size": item.size, "sha1": item.sha1,
                     "user": who.username, "user_id": who.user_id, "via": who.via} for item in stored]
        await _wait_indexed(app, state, waited_for, 0.0 if paused else cfg["import.upload_wait"], uploaded)
        answer = await _describe(app, staged)
    finally:
        for item in stored:
            state.in_flight.pop(item.sha1, None)
    for item in stored:
        log.info("upload stored %s (%d bytes)", item.path, item.size)
    queued = any(a["state"] == "queued" for a in answer)
    return web.json_response({"files": answer}, status=202 if queued else 201)


# -- imports -----------------------------------------------------------------------------------------------

ImportId = Annotated[str, Field(min_length=16, max_length=16, pattern=r"^[0-9a-f]{16}$", description="import id")]


class ImportBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: Optional[str] = Field(default=None, max_length=4096,
                                  description="absolute path of a folder on the server (default: [import] import_folder)")
    move: bool = Field(default=False, description="delete each source file once its copy is verified (size and SHA-1)")


class ImportSummary(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    source: str
    move: bool
    state: Literal["running", "finished", "failed", "interrupted"]
    started_at: str
    finished_at: Optional[str] = None
    error: Optional[str] = None
    counts: dict[str, int] = Field(description="copied, moved, skipped, failed, ignored")
    progress: dict[str, Any] = Field(description="files, done, bytes, bytes_done, percent")


class ImportDetail(ImportSummary):
    copied: list[dict[str, Any]]
    moved: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    ignored: list[str]
    folders: list[str]


@requires(Scope.ADMIN)
@validated
async def start_import(request: web.Request, body: ImportBody) -> Union[r202[ImportSummary], r409[ErrorBody]]:
    """Import a folder on the server into the library: copied (or with `move`, moved once each
    copy is verified) into the dated layout folders with dated names (20190705_153012_1a2b3c4d.jpg),
    sidecars and Live Photo pairs kept together, duplicates skipped. Runs in the background:
    follow GET /import/{import_id}; an `import.finished` event tells when it is done.

    Tags: uploads
    Status Codes:
        202: the import started
        400: the folder is missing, not absolute, or overlaps the library or the data folder
        409: another import is running
    """
    app = _app(request)
    assert app.imports is not None
    folder = body.folder if body.folder is not None else app.config["import.import_folder"]
    if not str(folder).strip():
        raise bad_request("name a folder to import (no [import] import_folder is set)", "folder")
    try:
        report = await app.imports.start(Path(folder), move=body.move)
    except ImportRefused as exc:
        raise bad_request(str(exc), "folder") from None
    except ImportBusy as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return web.json_response(report.summary(), status=202,
                             headers={"Location": f"{request.path.rstrip('/')}/{report.id}"})


@requires(Scope.ADMIN)
@validated
async def list_imports(request: web.Request, limit: int = Field(50, ge=1, le=200)) -> r200[list[ImportSummary]]:
    """Recent imports, newest first.

    Tags: uploads
    """
    app = _app(request)
    assert app.imports is not None
    reports = await asyncio.to_thread(app.imports.recent, limit)
    return web.json_response([r.summary() for r in reports])


@requires(Scope.ADMIN)
@validated
async def get_import(request: web.Request, import_id: ImportId, /) -> r200[ImportDetail]:
    """One import's progress while it runs, and its report: every file copied, moved, skipped
    (with the duplicate it matched) or failed (with the reason).

    Tags: uploads
    """
    app = _app(request)
    assert app.imports is not None
    report = await asyncio.to_thread(app.imports.get, import_id)
    if report is None:
        raise not_found(f"no import {import_id!r}")
    return web.json_response(report.as_dict())


def setup_routes(web_app: web.Application, prefix: str) -> None:
    app = web_app[APP_KEY]
    cfg = app.config
    state = UploadState(root_rel=check_relative_folder(cfg["import.upload_folder"], "[import] upload_folder"),
                        layout=check_layout(cfg["import.layout"]))
    web_app[UPLOADS] = state
    web_app.cleanup_ctx.append(subscription(app.stored, state.on_stored))
    r = web_app.router
    r.add_post(f"{prefix}/uploads", upload)
    r.add_post(f"{prefix}/import", start_import)
    r.add_get(f"{prefix}/import", list_imports)
    r.add_get(f"{prefix}/import/{{import_id}}", get_import)

"""Index control: start a scan (all of the library or one folder), stop (pause) indexing, and the
progress of what is being indexed.

Stopping pauses the queue's `index` and `tag` jobs (JobQueue.pause_indexing): jobs in flight finish,
the queued ones stay queued in SQLite, nothing is lost, and the next start resumes them. The pause
state lives in the job queue, not here, so MQTT's `cmd/index` (pause/resume) and /status see and
change the same state. A pause lasts
until a start or a restart of the daemon (a restart always indexes: a forgotten pause must not
leave a library unindexed for months). The watcher and periodic rescans keep queueing work
while paused, so the start after a pause finds everything that arrived meanwhile.

Rates (files per second, and from them an ETA) come from the indexer's own store callbacks over
the last minute, so they describe this machine now, not an average since boot.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r202, r404
from pydantic import BaseModel, ConfigDict, Field

from daemon.api.access import requires
from daemon.api.errors import ApiError, ErrorBody, bad_request, validated
from daemon.api.keys import APP_KEY
from daemon.app import App
from daemon.auth.roles import Scope
from daemon.jobs.queue import PAUSABLE
from daemon.library.importer import check_relative_folder
from daemon.listeners import subscription

RATE_WINDOW_S = 60.0
RATE_SAMPLES = 20_000  # bounded: at most this many timestamps are kept per kind


@dataclass
class IndexControl:
    """The web app's view of indexing: recent completions (for rates and the ETA)."""

    indexed: deque[float] = field(default_factory=lambda: deque(maxlen=RATE_SAMPLES))
    tagged: deque[float] = field(default_factory=lambda: deque(maxlen=RATE_SAMPLES))

    def on_stored(self, _outcome: Any) -> None:
        self.indexed.append(time.monotonic())

    def on_tagged(self, _outcome: Any) -> None:
        self.tagged.append(time.monotonic())

    @staticmethod
    def rate(samples: deque[float]) -> float:
        """Completions per second over the last minute (or since the first one, if sooner)."""
        now = time.monotonic()
        while samples and samples[0] < now - RATE_WINDOW_S:
            samples.popleft()
        if len(samples) < 2:
            return 0.0
        span = max(now - samples[0], 1.0)
        return len(samples) / span


INDEX_CONTROL: web.AppKey[IndexControl] = web.AppKey("shoebox_index_control")


class StartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: Optional[str] = Field(default=None, max_length=1024,
                                description="a folder relative to the library for a partial scan; omit for all of it")


class IndexProgress(BaseModel):
    model_config = ConfigDict(extra="allow")
    scanning: bool
    indexing: bool
    paused: bool
    queued: dict[str, int] = Field(description="queued jobs by kind (index, tag)")
    queued_total: int
    done: dict[str, int] = Field(description="jobs finished since the daemon started, by kind")
    failed: int = Field(description="files whose indexing failed (see /status for the reasons)")
    failed_jobs: int = Field(description="jobs that failed for good since the daemon started")
    files_per_s: float = Field(description="files indexed per second over the last minute")
    tags_per_s: float = Field(description="photos tagged per second over the last minute")
    eta_s: Optional[float] = Field(default=None, description="seconds until the index queue is empty at this rate")


class StartAnswer(BaseModel):
    model_config = ConfigDict(extra="allow")
    started: bool
    path: Optional[str] = None
    resumed: bool


def _app(request: web.Request) -> App:
    return request.app[APP_KEY]


async def progress(app: App, control: IndexControl) -> dict[str, Any]:
    assert app.db is not None and app.queue is not None

    def counts(conn: sqlite3.Connection) -> tuple[dict[str, int], int]:
        queued = {r["kind"]: r["n"] for r in conn.execute(
            "SELECT kind, count(*) AS n FROM jobs WHERE state = 'queued' GROUP BY kind")}
        failed = conn.execute("SELECT count(*) FROM files WHERE state = 'error'").fetchone()[0]
        return queued, failed

    queued, failed = await app.db.read(counts)
    for kind in PAUSABLE:
        queued.setdefault(kind, 0)
    files_rate = control.rate(control.indexed)
    tag_rate = control.rate(control.tagged)
    eta = None
    paused = app.queue.paused
    if queued["index"] and files_rate > 0 and not paused:
        eta = round(queued["index"] / files_rate, 1)
    elif not queued["index"]:
        eta = 0.0
    scanning = bool(app.scanner and app.scanner.running)
    stats = app.queue.stats
    return {
        "scanning": scanning,
        "indexing": scanning or bool(app.queue.in_flight) or (not paused and any(queued.values())),
        "paused": paused,
        "queued": queued,
        "queued_total": sum(queued.values()),
        "done": {kind: stats.by_kind.get(kind, 0) for kind in sorted({*PAUSABLE, *stats.by_kind})},
        "failed": failed,
        "failed_jobs": stats.failed,
        "files_per_s": round(files_rate, 2),
        "tags_per_s": round(tag_rate, 2),
        "eta_s": eta,
        "last_scan": None if app.scanner is None or app.scanner.last is None else {
            "status": app.scanner.last.status, "reason": app.scanner.last.reason, "seen": app.scanner.last.seen,
            "added": app.scanner.last.added, "changed": app.scanner.last.changed, "queued": app.scanner.last.queued},
    }


@requires(Scope.READ)
@validated
async def get_progress(request: web.Request) -> r200[IndexProgress]:
    """Indexing progress: scanning, queued jobs by kind, done, failed, files per second, ETA.

    Tags: index
    """
    return web.json_response(await progress(_app(request), request.app[INDEX_CONTROL]))


@requires(Scope.ADMIN)
@validated
async def start(request: web.Request, body: StartBody) -> Union[r202[StartAnswer], r404[ErrorBody]]:
    """Scan the library (or one folder of it, `{"path": "2019/07"}`) for new and changed files,
    and resume indexing if it was stopped. Answers at once; follow GET /index for progress.

    Tags: index
    Status Codes:
        202: the scan started (indexing follows in the background)
        400: the path is absolute, leaves the library or is hidden
        404: the folder does not exist in the library
    """
    app = _app(request)
    assert app.queue is not None
    only = None
    if body.path is not None and body.path.strip("/ ") not in ("", "."):
        try:
            rel = check_relative_folder(body.path, "path")
        except ValueError as exc:
            raise bad_request(str(exc), "path") from None
        folder = app.library / rel
        if not folder.is_dir():
            raise ApiError(404, "not_found", f"there is no folder {rel!r} in the library", {"field": "path"})
        only = [os.fsencode(rel)]
    resumed = await app.queue.resume_indexing()
    app.spawn(app.scan(only), "index-start")
    return web.json_response({"started": True, "path": None if only is None else os.fsdecode(only[0]),
                              "resumed": resumed}, status=202)


@requires(Scope.ADMIN)
@validated
async def stop(request: web.Request) -> r200[IndexProgress]:
    """Stop indexing and tagging: jobs in flight finish, queued ones wait (kept in the database)
    until POST /index/start or a restart.

    Tags: index
    """
    app = _app(request)
    assert app.queue is not None
    await app.queue.pause_indexing()
    return web.json_response(await progress(app, request.app[INDEX_CONTROL]))


def setup_routes(web_app: web.Application, prefix: str) -> None:
    control = IndexControl()
    web_app[INDEX_CONTROL] = control
    app = web_app[APP_KEY]
    web_app.cleanup_ctx.append(subscription(app.stored, control.on_stored))
    web_app.cleanup_ctx.append(subscription(app.tagged, control.on_tagged))
    r = web_app.router
    r.add_get(f"{prefix}/index", get_progress)
    r.add_post(f"{prefix}/index/start", start)
    r.add_post(f"{prefix}/index/stop", stop)

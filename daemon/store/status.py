"""What the library looks like right now: counts, queue, errors, offline files, last scan.

One function serves `shoebox status`, `/api/v1/status` and the MQTT state topic, so they can never
disagree. `for_non_admin` cuts the answer down for everyone but admins (least information): counts
and progress stay, while file paths (errors, offline files, the library's absolute path), the
event transports (webhook URLs, the MQTT broker) and model and disk details go. It keeps named
fields rather than dropping named ones, so a field added later is admin-only until someone decides
otherwise.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from daemon.store.db import Database


def _status(conn: sqlite3.Connection, *, error_limit: int) -> dict[str, Any]:
    photos = conn.execute(
        "SELECT count(*) AS total,"
        " sum(type = 'video') AS videos, sum(type = 'live') AS live, sum(type = 'raw') AS raw,"
        " sum(offline) AS offline, sum(archived) AS archived, sum(review) AS review"
        " FROM photos WHERE primary_file_id IS NOT NULL").fetchone()
    files = {r["state"]: r["n"] for r in conn.execute(
        "SELECT state, count(*) AS n FROM files WHERE kind != 'sidecar' GROUP BY state")}
    offline_files = conn.execute("SELECT count(*) FROM files WHERE offline = 1").fetchone()[0]
    sidecars = conn.execute("SELECT count(*) FROM files WHERE kind = 'sidecar'").fetchone()[0]
    queue = {r["kind"]: r["n"] for r in conn.execute(
        "SELECT kind, count(*) AS n FROM jobs WHERE state = 'queued' GROUP BY kind")}
    failed_jobs = conn.execute("SELECT count(*) FROM jobs WHERE state = 'failed'").fetchone()[0]
    # jobs waiting out a transient failure (daemon.jobs.failures): the library or a file gone for now
    waiting = {r["wait_reason"] or "unknown": {"files": r["n"], "reason": r["error"], "until": r["until"]}
               for r in conn.execute(
                   "SELECT wait_reason, count(*) AS n, max(error) AS error, max(not_before) AS until FROM jobs"
                   " WHERE state = 'queued' AND not_before IS NOT NULL GROUP BY wait_reason")}
    errors = [
        {"path": r["path_text"], "error": r["error"], "at": r["updated_at"]}
        for r in conn.execute(
            "SELECT path_text, error, updated_at FROM files WHERE state = 'error'"
            " ORDER BY updated_at DESC, id DESC LIMIT ?", (error_limit,))
    ]
    offline_list = [r["path_text"] for r in conn.execute(
        "SELECT path_text FROM files WHERE offline = 1 ORDER BY path_text LIMIT ?", (error_limit,))]
    scan = conn.execute(
        "SELECT started_at, finished_at, status, reason, seen, added, changed, offline, online"
        " FROM scans ORDER BY id DESC LIMIT 1").fetchone()
    last_indexed = conn.execute("SELECT max(indexed_at) FROM photos").fetchone()[0]
    return {
        "photos": {
            "total": photos["total"] or 0, "videos": photos["videos"] or 0, "live": photos["live"] or 0,
            "raw": photos["raw"] or 0, "offline": photos["offline"] or 0, "archived": photos["archived"] or 0,
            "review": photos["review"] or 0,
        },
        "files": {
            "indexed": files.get("indexed", 0), "new": files.get("new", 0), "errors": files.get("error", 0),
            "duplicates": files.get("duplicate", 0), "offline": offline_files, "sidecars": sidecars,
        },
        "queue": {"total": sum(queue.values()), **queue, "failed": failed_jobs},
        "waiting": waiting,
        "errors": errors,
        "offline_files": offline_list,
        "last_scan": dict(scan) if scan else None,
        "last_indexed": last_indexed,
    }


async def library_status(db: Database, *, error_limit: int = 20) -> dict[str, Any]:
    return await db.read(lambda conn: _status(conn, error_limit=error_limit))


#: Top-level fields of the status every signed-in user may see, as they are.
PUBLIC_FIELDS = ("version", "photos", "files", "queue", "last_indexed", "uptime_s", "indexing", "workers",
                 "watching", "places", "https")  # https: the CA fingerprint a user compares when installing it
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/[^\s'\",;:()]+")


def for_non_admin(status: dict[str, Any]) -> dict[str, Any]:
    """The status as a user or viewer sees it: counts and progress, no paths, no other parties."""
    out = {k: status[k] for k in PUBLIC_FIELDS if k in status}
    scan = status.get("last_scan")
    if scan is not None:
        scan = dict(scan)
        if scan.get("reason"):
            scan["reason"] = _ABSOLUTE_PATH.sub("[path]", str(scan["reason"]))
        out["last_scan"] = scan
    tagging = status.get("tagging") or {}
    out["tagging"] = {k: tagging[k] for k in ("enabled", "tasks", "backlog", "tagged", "photos_per_s") if k in tagging}
    storage = status.get("storage")
    if isinstance(storage, dict) and "state" in storage:
        out["storage"] = {"state": storage["state"]}
    thumbs = status.get("thumbnail_server")
    if isinstance(thumbs, dict):
        out["thumbnail_server"] = {"port": thumbs.get("port")}
    return out

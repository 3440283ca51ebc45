"""What the library looks like right now: counts, queue, errors, offline files, last scan.

One function serves `shoebox status`, `/api/v1/status` and the MQTT state topic, so they can never
disagree.
"""

from __future__ import annotations

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
        "errors": errors,
        "offline_files": offline_list,
        "last_scan": dict(scan) if scan else None,
        "last_indexed": last_indexed,
    }


async def library_status(db: Database, *, error_limit: int = 20) -> dict[str, Any]:
    return await db.read(lambda conn: _status(conn, error_limit=error_limit))

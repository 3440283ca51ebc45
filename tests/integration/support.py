"""Helpers for integration tests: a real App on a real SQLite file, or the real `shoebox` command."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from daemon.app import App
from daemon.config import Config, load_config
from daemon.library.scanner import ScanReport
from daemon.store.photos import iter_photos

REPO = Path(__file__).resolve().parents[2]
SHOEBOX = [sys.executable, "-m", "daemon"]


def make_config(library: Path, data: Path, **settings: Any) -> Config:
    """A Config for a test: no config file, no SHOEBOX_* from the environment, just these."""
    flags = {"library": str(library), "data": str(data), "index.watch": "false", "index.scan_on_start": "false",
             "index.rescan_interval": "0", "index.workers": "2"}
    flags.update({k.replace("__", "."): str(v) for k, v in settings.items()})
    return load_config(env={}, flags=flags, search_default_files=False)


async def index(config: Config) -> ScanReport:
    """One `shoebox index` pass in-process."""
    app = App(config)
    await app.start()
    try:
        return await app.index_once()
    finally:
        await app.stop()


def photos(data: Path) -> list[dict[str, Any]]:
    """Every photo as `shoebox export --json` writes it."""
    with sqlite3.connect(data / "shoebox.db") as conn:
        conn.row_factory = sqlite3.Row
        return list(iter_photos(conn))


def by_path(data: Path) -> dict[str, dict[str, Any]]:
    """Photos keyed by each of their files' paths."""
    out = {}
    for p in photos(data):
        for f in p["files"]:
            out[f["path"]] = p
    return out


def query(data: Path, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    with sqlite3.connect(data / "shoebox.db") as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, params).fetchall()


def shoebox(*args: str, env: dict[str, str] | None = None, timeout: float = 300, check: bool = True,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run the real command line."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SHOEBOX_")}
    full_env.update(env or {})
    result = subprocess.run([*SHOEBOX, *args], cwd=REPO, env=full_env, capture_output=True, text=True,
                            timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"shoebox {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_json(data: Path, library: Path) -> dict[str, Any]:
    out = shoebox("status", "--json", "--library", str(library), "--data", str(data))
    return json.loads(out.stdout)

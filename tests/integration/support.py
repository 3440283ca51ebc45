"""Helpers for integration tests: a real App on a real SQLite file, or the real `shoebox` command."""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from daemon.app import App
from daemon.config import Config, load_config
from daemon.library.scanner import ScanReport
from daemon.places.geonames import build_places_db
from daemon.store.photos import iter_photos

REPO = Path(__file__).resolve().parents[2]
SHOEBOX = [sys.executable, "-m", "daemon"]


@functools.cache
def places_template() -> Path:
    """The offline places database, built once per test process by the real builder.

    Building it takes ~3 s (the GeoNames CSV into SQLite) and every new data folder needs it: when
    each test's daemon built its own, that was the biggest cost of a test starting an App. The
    daemon still runs the real build_places_db at start; it finds this copy current (same source
    hash) and keeps it. The build itself is tested in tests/unit/test_places.py."""
    folder = Path(tempfile.mkdtemp(prefix="shoebox-test-places-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return build_places_db(folder / "places.db").path


def seed_places(data: Path) -> None:
    """Put the prebuilt places database into a new data folder (see places_template). Only where
    it changes nothing a test looks at: the folder's parent exists, no places.db is there yet, and
    it is on the same file system as the template (the fault tests' small tmpfs mounts are not)."""
    if (data / "places.db").exists() or not data.parent.is_dir() or (data.exists() and not data.is_dir()):
        return
    template = places_template()
    if os.stat(data.parent).st_dev != os.stat(template).st_dev:
        return
    data.mkdir(exist_ok=True)
    shutil.copy2(template, data / "places.db")


def make_config(library: Path, data: Path, **settings: Any) -> Config:
    """A Config for a test: no config file, no SHOEBOX_* from the environment, just these.
    A new data folder gets the prebuilt places database (seed_places)."""
    seed_places(data)
    flags = {"library": str(library), "data": str(data), "index.watch": "false", "index.scan_on_start": "false",
             "index.rescan_interval": "0", "index.workers": "2", "server.https": "false"}  # HTTPS: test_https.py
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

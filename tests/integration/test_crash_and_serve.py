"""The daemon as a user runs it: killed mid-index and restarted, and serving with a live watcher."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from daemon.library.thumbnails import INDEX_SIZES, ThumbSettings, thumb_path
from tests.conftest import copy_sample
from tests.integration.api_support import PASSWORD, create_admin, http_json
from tests.integration.support import REPO, SHOEBOX, free_port, photos, query, shoebox
from tests.waiting import wait_until

# slow: each test runs the real shoebox command (index, serve) in a subprocess
pytestmark = pytest.mark.slow


def distinct_copies(src: Path, dest_dir: Path, count: int) -> None:
    """`count` copies of a JPEG that differ in content hash (a unique trailer after the image data)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    data = src.read_bytes()
    for i in range(count):
        (dest_dir / f"IMG_{i:04d}.jpg").write_bytes(data + f"shoebox-test-{i}".encode())


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SHOEBOX_")}


def indexed_count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM files WHERE state = 'indexed'").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_kill_9_during_indexing_resumes_without_loss_or_duplicates(library: Path, tmp_path: Path, samples: Path) -> None:
    count = 40
    distinct_copies(samples / "exif-samples/jpg/mobile/jolla.jpg", library / "phone", count)
    data = tmp_path / "data"
    proc = subprocess.Popen([*SHOEBOX, "index", "--library", str(library), "--data", str(data), "--workers", "1",
                             "--quiet"], cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def five_indexed() -> bool:
        assert proc.poll() is None, f"indexing ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        return indexed_count(data / "shoebox.db") >= 5

    wait_until(five_indexed, 120, what="indexing to make progress")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done_before = indexed_count(data / "shoebox.db")
    assert 5 <= done_before < count, "the kill came too late to prove anything"

    shoebox("index", "--library", str(library), "--data", str(data), "--workers", "2", "--quiet")

    assert query(data, "PRAGMA integrity_check")[0][0] == "ok"
    files = query(data, "SELECT state, photo_id FROM files")
    assert len(files) == count, "a file row was lost or duplicated"
    assert all(f["state"] == "indexed" for f in files)
    assert len({f["photo_id"] for f in files}) == count, "two files share a photo, or a photo was made twice"
    all_photos = photos(data)
    assert len(all_photos) == count
    assert not query(data, "SELECT id FROM jobs"), "jobs were left behind"
    assert not query(data, "SELECT id FROM photos WHERE primary_file_id IS NULL"), "a half-made photo was left behind"
    settings = ThumbSettings()
    for p in all_photos:
        for size in INDEX_SIZES:
            assert thumb_path(data / "thumbs", p["thumb_key"], size, settings).is_file()
    leftovers = [p for p in (data / "thumbs").rglob("*") if p.is_file() and ".tmp" in p.name]
    assert not leftovers, f"temporary thumbnail files left: {leftovers[:3]}"


def get_json(url: str, token: str | None = None) -> dict:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def test_serve_answers_health_and_status_and_picks_up_new_files(library: Path, tmp_path: Path, samples: Path) -> None:
    copy_sample(samples, "exif-samples/jpg/Canon_40D.jpg", library)
    copy_sample(samples, "exif-samples/jpg/Nikon_D70.jpg", library / "sub")
    data = tmp_path / "data"
    create_admin(library, data)  # no default password: the operator makes the first admin
    port = free_port()
    proc = subprocess.Popen(
        [*SHOEBOX, "serve", "--library", str(library), "--data", str(data), "--server-host", "127.0.0.1",
         "--server-port", str(port), "--workers", "2", "--zeroconf-enabled", "false", "--server-https", "false"],
        cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        def healthy():  # type: ignore[no-untyped-def]
            try:
                return get_json(f"{base}/health")["status"] == "ok"
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                return False

        wait_until(healthy, 60, what="the server to answer /health")
        code, tokens = http_json("POST", f"{base}/auth/login", {"username": "admin", "password": PASSWORD})
        assert code == 200, tokens
        token = tokens["access_token"]

        def status() -> dict:
            return get_json(f"{base}/status", token)

        try:
            get_json(f"{base}/status")
            raise AssertionError("/status answered without credentials")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
        wait_until(lambda: status()["photos"]["total"] == 2, 60, what="the first scan")

        # a camera drops a new photo into a new folder: picked up by the watcher within seconds
        wait_until(lambda: status()["watching"], 15, what="the watcher to start")
        started = time.monotonic()
        copy_sample(samples, "exif-samples/jpg/gps/DSCN0010.jpg", library / "new" / "today")
        wait_until(lambda: status()["photos"]["total"] == 3, 15, what="the watcher to index a new file")
        assert time.monotonic() - started < 15
        current = status()
        assert current["watching"] is True and current["files"]["errors"] == 0

        # a file removed while serving goes offline, not away
        os.remove(library / "Canon_40D.jpg")
        wait_until(lambda: status()["photos"]["offline"] == 1, 15, what="the removal to be noticed")
        assert status()["photos"]["total"] == 3

        # a second daemon on the same data directory is refused, with a reason
        second = shoebox("index", "--library", str(library), "--data", str(data), check=False)
        assert second.returncode == 3 and "another shoebox process" in second.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, proc.stderr.read().decode()[-2000:]
    assert not (data / "shoebox.db-wal").exists() or (data / "shoebox.db-wal").stat().st_size == 0


def test_a_failed_start_exits_with_a_reason_instead_of_hanging(library: Path, tmp_path: Path) -> None:
    """A database written by a newer Shoebox: refuse it, say why, and exit (no thread left behind)."""
    data = tmp_path / "data"
    shoebox("index", "--library", str(library), "--data", str(data), "--quiet")
    with sqlite3.connect(data / "shoebox.db") as conn:
        conn.execute("PRAGMA user_version = 999")
    started = time.monotonic()
    result = shoebox("index", "--library", str(library), "--data", str(data), check=False, timeout=60)
    assert result.returncode == 4
    assert "newer version" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 30

"""The web server keeps answering quickly while the workers index and tag on every core.

A cheap API call is timed with the daemon idle, then again while it indexes and tags a batch of
photos. If CPU work ever ran on the event loop (a decode, an inference), requests would queue
behind whole jobs (tens to hundreds of milliseconds) and the busy p95 would jump far above idle.
"""

from __future__ import annotations

import os
import sqlite3
import signal
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.support import REPO, SHOEBOX, free_port
from tests.waiting import wait_until

# slow: a real shoebox serve measured while it tags
pytestmark = pytest.mark.slow


def timed_get(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as resp:
        resp.read()
    return time.perf_counter() - start


def first_scan_done(db: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute("SELECT count(*) FROM scans WHERE finished_at IS NOT NULL").fetchone()[0] > 0
    except sqlite3.Error:  # not created yet
        return False


def progress(db: Path) -> tuple[int, int, int]:
    """(photos, queued tag jobs, queued jobs) read straight from the store (WAL lets us)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        photos = conn.execute("SELECT count(*) FROM photos WHERE primary_file_id IS NOT NULL").fetchone()[0]
        tags, jobs = conn.execute("SELECT sum(kind = 'tag'), count(*) FROM jobs WHERE state = 'queued'").fetchone()
    return photos, tags or 0, jobs


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def test_api_latency_stays_flat_while_tagging(library: Path, tmp_path: Path, samples: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOEBOX_")}
    proc = subprocess.Popen(
        [*SHOEBOX, "serve", "--library", str(library), "--data", str(data), "--server-host", "127.0.0.1",
         "--server-port", str(port), "--workers", "2", "--server-https", "false"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    health = f"http://127.0.0.1:{port}/api/v1/health"
    try:
        def answering() -> bool:
            try:
                timed_get(health)
                return True
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                return False

        wait_until(answering, 60, interval=0.2, what="the server to start")
        wait_until(lambda: first_scan_done(data / "shoebox.db"), 30, what="the first (empty) scan to finish")
        idle = []
        for _ in range(150):
            idle.append(timed_get(health))
            time.sleep(0.01)  # not a wait: the pace of the measured requests

        # 40 distinct portraits and scenes: thumbnails, labels and faces for each, on both workers
        sources = [samples / "faces" / n for n in ("obama.jpg", "obama2.jpg", "biden.jpg", "grace_hopper.jpg")]
        sources += sorted((samples / "immich-test-assets/albums/nature").glob("*.jpg"))[:4]
        incoming = tmp_path / "incoming"
        incoming.mkdir()
        for i in range(40):
            src = sources[i % len(sources)]
            (incoming / f"IMG_{i:03d}.jpg").write_bytes(src.read_bytes() + f"#{i}".encode())
        os.rename(incoming, library / "camera")

        busy = []
        saw_tagging = False
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            busy.append(timed_get(health))
            if len(busy) % 25 == 0:
                photos, tag_jobs, jobs = progress(data / "shoebox.db")
                saw_tagging |= tag_jobs > 0
                if photos == 40 and jobs == 0:
                    break
            time.sleep(0.01)  # not a wait: the pace of the measured requests
        else:
            raise AssertionError("indexing and tagging 40 photos did not finish in 3 minutes")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert saw_tagging, "tagging never ran while we measured"
    assert len(busy) >= 50, f"only {len(busy)} requests made while busy"
    idle_p95, busy_p95 = p95(idle), p95(busy)
    print(f"\nhealth p95: idle {idle_p95 * 1000:.1f} ms, while indexing+tagging {busy_p95 * 1000:.1f} ms "
          f"({len(busy)} requests)")
    # A whole decode or inference on the loop would cost 20-200 ms per request at p95.
    assert busy_p95 < max(10 * idle_p95, 0.030), (idle_p95, busy_p95)

"""Latency of cheap authenticated calls, for comparing an idle daemon with one that is busy.

`measure_latency` is the helper other tests reuse (the tagging work compares idle against
"during tagging"): it keeps one HTTP/1.1 connection open, as a browser does, so the figures are
the server's answer time, not TCP set-up.
"""

from __future__ import annotations

import http.client
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.integration.api_support import Daemon, create_admin


@dataclass(frozen=True)
class Latency:
    path: str
    requests: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    def __str__(self) -> str:
        return (f"{self.path}: {self.requests} requests, p50 {self.p50_ms:.2f} ms, p95 {self.p95_ms:.2f} ms, "
                f"p99 {self.p99_ms:.2f} ms, max {self.max_ms:.2f} ms")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def measure_latency(base: str, token: str | None, path: str = "/api/v1/auth/me", *, requests: int = 200,
                    warmup: int = 10, pause: float = 0.0) -> Latency:
    """Time `requests` GETs of `path` (after `warmup` untimed ones) on one kept-alive connection.

    Every answer must be 200 (a refused token would measure the wrong thing). `pause` spaces the
    requests out, to sample latency over a longer stretch of background work."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    times: list[float] = []
    try:
        for i in range(warmup + requests):
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            elapsed = time.perf_counter() - started
            if resp.status != 200:
                raise AssertionError(f"GET {path} answered {resp.status}")
            if i >= warmup:
                times.append(elapsed * 1000)
            if pause:
                time.sleep(pause)  # not a wait: the pace of the measured requests
    finally:
        conn.close()
    return Latency(path, len(times), statistics.median(times), percentile(times, 95), percentile(times, 99),
                   max(times))


def test_percentile_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 95) == 95.0 and percentile(values, 100) == 100.0
    assert percentile([3.0], 95) == 3.0


@pytest.mark.slow
def test_idle_daemon_answers_cheap_authenticated_calls_fast(copy: tuple[Path, Path]) -> None:
    library, data = copy
    create_admin(library, data)
    with Daemon(library, data) as daemon:
        token = daemon.login()["access_token"]
        app_token = daemon.app_token(token, ["read"])
        figures = [
            measure_latency(daemon.base, None, "/api/v1/health"),
            measure_latency(daemon.base, token, "/api/v1/auth/me"),
            measure_latency(daemon.base, app_token, "/api/v1/auth/me"),
            measure_latency(daemon.base, token, "/api/v1/status"),
            measure_latency(daemon.base, token, "/api/v1/photos?limit=60"),
        ]
    for f in figures:
        print(f)
    # Generous bounds (a shared 2-core machine): an idle daemon answering in tens of ms would be a bug.
    for f in figures:
        assert f.p95_ms < 50, str(f)

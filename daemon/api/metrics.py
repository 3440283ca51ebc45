"""/metrics in Prometheus' text format (prometheus-client).

Why a registry per web app and not prometheus-client's global one: tests start several apps in
one process, and the project keeps no hidden module-level state. Library counts are read from
the store when scraped (one cheap aggregate query); request latency and job outcomes are
counted as they happen.

Behind authentication (`read` scope, e.g. an app token) unless `[metrics] public = true`.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from daemon.api.access import public, requires
from daemon.api.errors import validated
from daemon.api.keys import APP_KEY
from daemon.auth.roles import Scope
from daemon.library.indexer import StoreOutcome

# Latency buckets for a small machine: thumbnails in ~1 ms, searches in tens, a cold RAW in seconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.photos = Gauge("shoebox_photos", "Photos in the library by state", ["state"], registry=r)
        self.files = Gauge("shoebox_files", "Files by index state", ["state"], registry=r)
        self.queue = Gauge("shoebox_queue_jobs", "Queued jobs by kind", ["kind"], registry=r)
        self.jobs = Counter("shoebox_index_jobs", "Index jobs finished since start", ["result"], registry=r)
        self.indexing = Gauge("shoebox_indexing", "1 while the library is being indexed", registry=r)
        self.uptime = Gauge("shoebox_uptime_seconds", "Seconds since the daemon started", registry=r)
        self.latency = Histogram("shoebox_http_request_duration_seconds", "HTTP request latency by route",
                                 ["method", "route"], buckets=BUCKETS, registry=r)
        self.requests = Counter("shoebox_http_requests", "HTTP requests by route and status class",
                                ["method", "route", "status"], registry=r)

    def job_done(self, outcome: StoreOutcome) -> None:
        """App listener: one index job stored."""
        self.jobs.labels("failed" if outcome.error else "duplicate" if outcome.duplicate else "done").inc()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.latency.labels(method, route).observe(seconds)
        self.requests.labels(method, route, f"{status // 100}xx").inc()

    def update(self, status: dict[str, Any]) -> None:
        for state, n in status["photos"].items():
            self.photos.labels(state).set(n)
        for state, n in status["files"].items():
            self.files.labels(state).set(n)
        self.queue.clear()
        for kind, n in status["queue"].items():
            self.queue.labels(kind).set(n)
        self.indexing.set(1 if status.get("indexing") else 0)
        self.uptime.set(status.get("uptime_s", 0))


METRICS_KEY: web.AppKey[Metrics] = web.AppKey("shoebox_metrics")


def route_name(request: web.Request) -> str:
    """The route's pattern (/api/v1/photos/{uid}), never the raw path: bounded label values."""
    info = request.match_info
    if info.http_exception is not None or info.route.resource is None:
        return "unmatched"
    return info.route.resource.canonical


@web.middleware
async def timing(request: web.Request, handler):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        request.app[METRICS_KEY].observe(request.method, route_name(request), status, time.perf_counter() - started)


def metrics_view(*, public_access: bool):  # type: ignore[no-untyped-def]
    """The /metrics view for one web app: public or needing the `read` scope, as configured."""

    @validated
    async def metrics(request: web.Request) -> r200[str]:
        """Prometheus metrics: photos, files by state, queue, jobs done and failed, request latency.
        Needs the `read` scope unless `[metrics] public = true`.

        Tags: operations
        """
        m = request.app[METRICS_KEY]
        m.update(await request.app[APP_KEY].status())
        return web.Response(body=generate_latest(m.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return public(metrics) if public_access else requires(Scope.READ)(metrics)

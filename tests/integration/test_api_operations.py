"""Operations: /metrics for Prometheus (behind auth unless made public) and /status."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.auth.roles import Role
from tests.integration.api_support import add_user, api, auth, clone, login, photo_ids, settings
from tests.integration.support import make_config


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics:\n{text[:2000]}")


async def test_metrics_count_photos_files_jobs_and_request_latency(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    library, data = clone(indexed, tmp_path)
    async with api(make_config(library, data, **settings(metrics__public="true"))) as (app, client):
        await add_user(app, "ann", Role.VIEWER)
        h = auth(await login(client, "ann"))
        uid = (await photo_ids(app))["Canon_40D.jpg"]
        for _ in range(3):
            assert (await client.get(f"/api/v1/photos/{uid}", headers=h)).status == 200
        # a changed file is indexed again while serving: one job done
        photo = library / "camera" / "Nikon_D70.jpg"
        st = photo.stat()
        os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
        await app.scan()
        await app.queue.wait_idle()

        r = await client.get("/metrics")  # public by the setting: a Prometheus on the home network
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
        assert metric(text, 'shoebox_photos{state="total"}') == 5
        assert metric(text, 'shoebox_files{state="indexed"}') == 5
        assert metric(text, 'shoebox_queue_jobs{kind="total"}') == 0
        assert metric(text, 'shoebox_index_jobs_total{result="done"}') == 1
        # latency by route pattern, never by raw path (ids would make endless label values)
        assert metric(text, 'shoebox_http_request_duration_seconds_count{method="GET",route="/api/v1/photos/{uid}"}') == 3
        assert uid not in text
        assert metric(text, 'shoebox_http_requests_total{method="POST",route="/api/v1/auth/login",status="2xx"}') == 1


async def test_metrics_need_credentials_by_default(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    async with api(make_config(*clone(indexed, tmp_path), **settings())) as (app, client):
        assert (await client.get("/metrics")).status == 401
        await add_user(app, "ann", Role.ADMIN)
        session = await login(client, "ann")
        r = await client.post("/api/v1/auth/tokens", json={"name": "prometheus", "scopes": ["read"]},
                              headers=auth(session))
        scraper = (await r.json())["token"]
        r = await client.get("/metrics", headers=auth(scraper))
        assert r.status == 200 and "shoebox_photos" in await r.text()
        status = await (await client.get("/api/v1/status", headers=auth(scraper))).json()
        assert status["photos"]["total"] == 5 and status["files"]["errors"] == 0

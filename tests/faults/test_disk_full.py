"""A full disk is a state Shoebox waits out, not a verdict on the photos.

Real file systems: each test mounts a tmpfs of a few MB as the data folder (or as the thumbnail
folder), lets real indexing fill it, and then gives it more room, as a user freeing space would.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import copy_sample
from tests.faults.fs import cpu_seconds, fill, noise_photos, resize, tmpfs
from tests.integration.api_support import Daemon, create_admin, events_of, http_json
from tests.integration.support import REPO, SHOEBOX, free_port, make_config, shoebox
from tests.waiting import wait_until, wait_until_async

# slow: fault tests: real full file systems (tmpfs) under the real shoebox command and daemon
pytestmark = pytest.mark.slow

PHOTOS = 24  # about 60 MB of thumbnails: several times what the small disks below hold


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SHOEBOX_")}


def status_of(d: Daemon, token: str) -> dict:
    code, body = http_json("GET", f"{d.base}/api/v1/status", token=token)
    assert code == 200, body
    return body


def cli_status(library: Path, data: Path) -> dict:
    out = shoebox("status", "--json", "--library", str(library), "--data", str(data))
    return json.loads(out.stdout)


def idle_cpu(pid: int, window: float = 3.0) -> float:
    """CPU seconds the process used over `window` seconds of wall time (a measurement, not a wait)."""
    before = cpu_seconds(pid)
    time.sleep(window)  # not a wait: the window measured
    return cpu_seconds(pid) - before


def assert_paused_then_resumed(d: Daemon, token: str, library: Path, data: Path, disk: Path, volume: str) -> None:
    started = time.monotonic()
    paused = wait_until(lambda: (s := status_of(d, token))["storage"]["state"] == "full" and s,
                        timeout=60, what="the daemon to report a full disk")
    assert paused["storage"]["indexing_paused"] is True
    assert paused["storage"]["volume"] == volume, paused["storage"]
    assert time.monotonic() - started < 60
    # shoebox status, on the machine, says the same without logging in
    on_cli = cli_status(library, data)["storage"]
    assert on_cli["state"] == "full" and on_cli["volume"] == volume, on_cli
    # reads go on while paused
    code, page = http_json("GET", f"{d.base}/api/v1/photos", token=token)
    assert code == 200, page

    # once the jobs in flight have finished, a paused daemon does (almost) nothing
    wait_until(lambda: not status_of(d, token)["indexing"], timeout=30, what="the jobs in flight to finish")
    assert d.proc is not None
    used = idle_cpu(d.proc.pid)
    assert used < 0.3, f"the paused daemon used {used:.2f} s of CPU in 3 s"
    indexed_while_full = status_of(d, token)["photos"]["total"]
    assert indexed_while_full < PHOTOS, "the disk never filled: the test proves nothing"

    resize(disk, "512m")  # space is back
    done = wait_until(lambda: (s := status_of(d, token))["photos"]["total"] == PHOTOS
                      and s["queue"]["total"] == 0 and s["storage"]["state"] == "ok" and s,
                      timeout=120, what="every photo to be indexed after space was freed")
    assert done["files"]["errors"] == 0, done["errors"]
    assert cli_status(library, data)["storage"]["state"] == "ok"


def test_full_data_disk_pauses_indexing_and_resumes_when_space_is_freed(tmp_path: Path) -> None:
    library = tmp_path / "library"
    noise_photos(library / "noise", PHOTOS)
    disk = tmp_path / "disk"
    with tmpfs(disk, "40m"):  # the places database takes 18 MB of it, the thumbnails the rest
        data = disk / "data"
        create_admin(library, data)
        # min_free_mib 0: no early pause, the daemon meets the real ENOSPC (SQLite and thumbnails)
        with Daemon(library, data, "--index-min-free-mib", "0") as d:
            token = d.login()["access_token"]
            assert_paused_then_resumed(d, token, library, data, disk, volume="data")
        assert "Traceback" not in d.stderr(), d.stderr()[-3000:]
        assert "indexing paused" in d.stderr()


def test_full_thumbnail_disk_pauses_indexing_without_errors_and_resumes(tmp_path: Path) -> None:
    library = tmp_path / "library"
    noise_photos(library / "noise", PHOTOS)
    data = tmp_path / "data"
    create_admin(library, data)
    thumbs = data / "thumbs"
    with tmpfs(thumbs, "8m"):
        with Daemon(library, data, "--index-min-free-mib", "1") as d:
            token = d.login()["access_token"]
            assert_paused_then_resumed(d, token, library, data, thumbs, volume="thumbnails")
        assert "Traceback" not in d.stderr(), d.stderr()[-3000:]


async def test_storage_events_announce_the_pause_and_the_resume(tmp_path: Path) -> None:
    """storage.full and storage.ok go through the event bus like every other event."""
    from daemon.app import App

    library = tmp_path / "library"
    noise_photos(library / "noise", 12)
    data = tmp_path / "data"
    thumbs = data / "thumbs"
    with tmpfs(thumbs, "6m"):
        app = App(make_config(library, data, tagging__enabled="false", index__min_free_mib="1"))
        await app.start()
        try:
            assert app.storage is not None and app.queue is not None
            async with events_of(app) as seen:
                await app.scan()
                await wait_until_async(lambda: app.storage.paused, timeout=60, what="the pause")
                status = await app.status()
                assert status["storage"]["state"] == "full" and status["storage"]["volume"] == "thumbnails"
                assert (await app.events.state())["storage"] == "full"  # the MQTT state document
                resize(thumbs, "256m")
                await wait_until_async(lambda: not app.storage.paused, timeout=30, what="the resume")
                await app.queue.wait_idle()
            types = [e["type"] for e in seen if e["type"].startswith("storage.")]
            assert types == ["storage.full", "storage.ok"], types
            full = next(e["data"] for e in seen if e["type"] == "storage.full")
            assert full["volume"] == "thumbnails" and full["path"] == str(thumbs)
            status = await app.status()
            assert status["photos"]["total"] == 12 and status["files"]["errors"] == 0
        finally:
            await app.stop()


def test_index_on_a_disk_that_fills_stops_with_exit_5_and_a_later_run_finishes(tmp_path: Path) -> None:
    library = tmp_path / "library"
    noise_photos(library / "noise", PHOTOS)
    disk = tmp_path / "disk"
    with tmpfs(disk, "40m"):
        data = disk / "data"
        args = ["index", "--library", str(library), "--data", str(data), "--quiet", "--index-min-free-mib", "0"]
        run = subprocess.run([*SHOEBOX, *args], cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
        assert run.returncode == 5, run.stderr[-3000:]
        last = run.stderr.strip().splitlines()[-1]
        assert last.startswith("shoebox: indexing stopped: the data disk is full"), last
        assert "Traceback" not in run.stderr, run.stderr[-3000:]
        assert run.stderr.count("indexing paused") == 1, "one pause, not a loop"
        left = cli_status(library, data)
        assert left["files"]["errors"] == 0 and left["queue"]["total"] > 0

        resize(disk, "512m")
        again = subprocess.run([*SHOEBOX, *args], cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-3000:]
        done = cli_status(library, data)
        assert done["photos"]["total"] == PHOTOS and done["files"]["errors"] == 0 and done["queue"]["total"] == 0


def test_starting_on_a_full_disk_exits_5_with_one_clear_line(tmp_path: Path) -> None:
    library = tmp_path / "library"
    noise_photos(library / "noise", 1)
    disk = tmp_path / "disk"
    with tmpfs(disk, "4m"):
        data = disk / "data"
        data.mkdir()
        fill(disk)
        for command, extra in (("serve", ["--server-port", str(free_port())]), ("index", []),
                               ("serve", ["--server-port", str(free_port()), "--index-min-free-mib", "0"])):
            run = subprocess.run([*SHOEBOX, command, "--library", str(library), "--data", str(data), *extra],
                                 cwd=REPO, env=env(), capture_output=True, text=True, timeout=120)
            assert run.returncode == 5, (command, extra, run.stderr[-3000:])
            assert "Traceback" not in run.stderr, run.stderr[-3000:]
            last = run.stderr.strip().splitlines()[-1]
            assert last.startswith("shoebox: ") and "disk is full" in last, last


def test_an_unusable_data_folder_exits_6_with_the_reason(tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    not_a_folder = tmp_path / "data-file"
    not_a_folder.write_text("this is a file")
    read_only = tmp_path / "ro"
    cases = [(not_a_folder, "is not a folder")]
    with tmpfs(read_only, "1m", options="ro"):
        cases.append((read_only, "cannot write into the data folder"))
        for data, reason in cases:
            for command in ("serve", "index"):
                run = subprocess.run([*SHOEBOX, command, "--library", str(library), "--data", str(data)],
                                     cwd=REPO, env=env(), capture_output=True, text=True, timeout=120)
                assert run.returncode == 6, (command, data, run.stderr[-3000:])
                assert "Traceback" not in run.stderr, run.stderr[-3000:]
                last = run.stderr.strip().splitlines()[-1]
                assert reason in last, last


def test_an_import_into_a_full_library_disk_is_refused_with_the_reason(tmp_path: Path, samples: Path) -> None:
    card = tmp_path / "card"
    copy_sample(samples, "exif-samples/jpg/Canon_40D.jpg", card)
    disk = tmp_path / "library"
    with tmpfs(disk, "4m"):
        fill(disk)
        run = shoebox("import", str(card), "--library", str(disk), "--data", str(tmp_path / "data"), check=False)
        assert run.returncode == 2, run.stderr[-3000:]
        assert "the library disk is full" in run.stderr.strip().splitlines()[-1]
        assert (card / "Canon_40D.jpg").exists()

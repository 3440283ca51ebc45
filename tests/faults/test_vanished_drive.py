"""A Pi owner's bad day with a USB drive or a NAS share: the library goes away while it is being
indexed or served, an empty folder (an empty mount point) takes its place, and it comes back.
Nothing may be lost, nothing may be marked offline because of it, and everything heals with no
manual step. A corrupt file, on the other hand, is a verdict that stays until the file (or the
software judging it) changes, or the user asks for a retry.

Real processes (`shoebox index` and `shoebox serve` subprocesses, the real inotify watcher), real
files. "The drive is gone" is the library folder renamed away (what the daemon sees of an
unplugged drive: the folder and every file in it are gone at once) and renamed back; an empty
mount point is an empty folder made in its place, or (as root, which CI is) an empty tmpfs
mounted over it, which also changes the volume's device number.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.integration.support import REPO, SHOEBOX, free_port, shoebox
from tests.waiting import wait_until

# slow: fault tests: a real drive vanishing under the real shoebox command and daemon
pytestmark = pytest.mark.slow

PHOTOS = 150


def make_photos(library: Path, count: int, *, folders: int = 3, start: int = 0) -> None:
    """`count` small, distinct JPEGs (noise, so no two share a hash) spread over a few folders."""
    rng = random.Random(start)
    for i in range(start, start + count):
        folder = library / f"{2020 + i % folders}"
        folder.mkdir(parents=True, exist_ok=True)
        im = Image.frombytes("RGB", (64, 48), rng.randbytes(64 * 48 * 3)).resize((320, 240))
        im.save(folder / f"IMG_{i:04d}.jpg", quality=85)


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SHOEBOX_")}


def db_query(data: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """Read the daemon's database the way `shoebox status` does (read-only, while it runs)."""
    path = data / "shoebox.db"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            conn.row_factory = sqlite3.Row
            return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # not created yet (the first migration is running)
        return []


def count(data: Path, sql: str, params: tuple[Any, ...] = ()) -> int:
    rows = db_query(data, sql, params)
    return rows[0][0] if rows else 0


def indexed(data: Path) -> int:
    return count(data, "SELECT count(*) FROM files WHERE state = 'indexed'")


def assert_nothing_lost(data: Path, expected: int) -> None:
    """Every photo indexed, online, no error, no job left over."""
    files = db_query(data, "SELECT path_text, state, error, offline FROM files")
    assert len(files) == expected
    bad = [dict(f) for f in files if f["state"] != "indexed" or f["offline"]]
    assert not bad, f"{len(bad)} files not indexed or offline, e.g. {bad[:3]}"
    assert count(data, "SELECT count(*) FROM photos WHERE primary_file_id IS NOT NULL AND offline = 0") == expected
    assert count(data, "SELECT count(*) FROM jobs WHERE kind = 'index'") == 0


def assert_nothing_offline_or_failed(data: Path) -> None:
    offline = db_query(data, "SELECT path_text FROM files WHERE offline = 1 LIMIT 5")
    assert not offline, f"files were marked offline while the drive was away: {[r[0] for r in offline]}"
    errors = db_query(data, "SELECT path_text, error FROM files WHERE state = 'error' LIMIT 5")
    assert not errors, f"files were given an error while the drive was away: {[tuple(r) for r in errors]}"
    assert count(data, "SELECT count(*) FROM photos WHERE offline = 1") == 0


class Daemon:
    """`shoebox serve` as a subprocess, stopped with SIGTERM."""

    def __init__(self, library: Path, data: Path, *extra: str) -> None:
        self.data = data
        self.log = data.parent / "serve.log"
        data.mkdir(parents=True, exist_ok=True)
        self._log_fh = self.log.open("wb")
        self.proc = subprocess.Popen(
            [*SHOEBOX, "serve", "--library", str(library), "--data", str(data), "--server-host", "127.0.0.1",
             "--server-port", str(free_port()), "--server-thumbnail-port", "0", "--zeroconf-enabled", "false",
             "--server-https", "false",
             *extra],
            cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=self._log_fh)

    def alive(self) -> bool:
        assert self.proc.poll() is None, f"shoebox serve died:\n{self.log.read_text()[-3000:]}"
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("shoebox serve did not stop on SIGTERM")
            assert code == 0, self.log.read_text()[-3000:]
        self._log_fh.close()


def scans_since(data: Path, scan_id: int, status: str) -> int:
    return count(data, "SELECT count(*) FROM scans WHERE id > ? AND status = ?", (scan_id, status))


def last_scan_id(data: Path) -> int:
    return count(data, "SELECT coalesce(max(id), 0) FROM scans")


# -- drive gone mid-index ------------------------------------------------------------------------------


def test_drive_gone_mid_index_under_index_is_finished_by_the_next_run(library: Path, tmp_path: Path) -> None:
    make_photos(library, PHOTOS)
    data = tmp_path / "data"
    proc = subprocess.Popen([*SHOEBOX, "index", "--library", str(library), "--data", str(data), "--workers", "1",
                             "--quiet"], cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    away = tmp_path / "unplugged"
    try:
        wait_until(lambda: proc.poll() is None and indexed(data) >= 10 or proc.poll() is not None, 120,
                   what="the first photos to be indexed")
        assert proc.poll() is None, f"indexing ended before the drive could be pulled: {proc.stderr.read()[-2000:]}"
        library.rename(away)  # the drive is gone, mid-index
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done_before = indexed(data)
    assert done_before < PHOTOS, "the drive was pulled too late to prove anything"
    # the run ends by itself, says why, and has neither given up on a file nor marked one offline
    assert proc.returncode == 1, stderr[-2000:]
    assert "the library went away during the run" in stderr and "does not exist" in stderr, stderr[-2000:]
    assert_nothing_offline_or_failed(data)
    assert count(data, "SELECT count(*) FROM files") == PHOTOS

    # the drive is back: the next run indexes every photo, with no other step
    away.rename(library)
    result = shoebox("index", "--library", str(library), "--data", str(data), "--workers", "2", "--quiet")
    assert result.returncode == 0
    assert_nothing_lost(data, PHOTOS)


def test_drive_gone_mid_index_while_serving_heals_when_it_returns(library: Path, tmp_path: Path) -> None:
    make_photos(library, PHOTOS)
    data = tmp_path / "data"
    daemon = Daemon(library, data, "--workers", "1")
    away = tmp_path / "unplugged"
    try:
        wait_until(lambda: daemon.alive() and indexed(data) >= 10, 120, what="the first photos to be indexed")
        library.rename(away)  # the drive is gone, mid-index
        # the daemon notices (the jobs now wait for the library) ...
        wait_until(lambda: daemon.alive() and count(
            data, "SELECT count(*) FROM jobs WHERE wait_reason = 'library'"), 60,
            what="the index jobs to wait for the library")
        assert indexed(data) < PHOTOS, "the drive was pulled too late to prove anything"
        # `shoebox status` says what waits and why
        shown = shoebox("status", "--library", str(library), "--data", str(data)).stdout
        assert "wait for the library to come back" in shown and "does not exist" in shown, shown
        # ... and neither gives up on a file nor marks one offline, however many scans look at it
        wait_until(lambda: daemon.alive() and scans_since(data, 0, "skipped") >= 1 or daemon.alive()
                   and count(data, "SELECT count(*) FROM jobs WHERE waits >= 2"), 60,
                   what="the daemon to look again while the drive is away")
        assert_nothing_offline_or_failed(data)

        away.rename(library)  # the drive is back: no manual step
        wait_until(lambda: daemon.alive() and indexed(data) == PHOTOS, 120, what="every photo to be indexed")
        assert_nothing_lost(data, PHOTOS)
    finally:
        if away.exists() and not library.exists():
            away.rename(library)
        daemon.stop()


# -- an empty folder in place of the library while serving ----------------------------------------------


@pytest.mark.parametrize("noticed_by", ["watcher", "rescans"])
def test_empty_folder_in_place_of_the_library_marks_nothing_offline(library: Path, tmp_path: Path,
                                                                    noticed_by: str) -> None:
    """The most common NAS failure: the share is not mounted, its empty mount point is. Noticed by
    the watcher alone (no rescans), or by a rescan every second alone (no watcher), for as long
    as it lasts; nothing is marked offline and nothing is lost when the share is back."""
    make_photos(library, 20)
    data = tmp_path / "data"
    flags = (["--index-rescan-interval", "0"] if noticed_by == "watcher"
             else ["--index-watch", "false", "--index-rescan-interval", "1"])
    daemon = Daemon(library, data, "--workers", "2", *flags)
    away = tmp_path / "share"
    junk = library / "desktop.ini"
    try:
        wait_until(lambda: daemon.alive() and indexed(data) == 20, 120, what="the library to be indexed")
        before = last_scan_id(data)
        library.rename(away)
        library.mkdir()  # the empty mount point
        if noticed_by == "watcher":
            # the watcher sees the folder replaced and scans it; then something writes into the
            # empty mount point (a desktop.ini, as Windows clients do): the watcher scans again
            wait_until(lambda: daemon.alive() and scans_since(data, before, "skipped") >= 1, 60,
                       what="the watcher to scan the replaced folder")
            junk.write_text("[.ShellClassInfo]\n")
            wait_until(lambda: daemon.alive() and scans_since(data, before, "skipped") >= 2, 60,
                       what="the watcher to scan the empty folder again")
        else:
            wait_until(lambda: daemon.alive() and scans_since(data, before, "skipped") >= 3, 60,
                       what="several rescans of the empty folder")
        assert scans_since(data, before, "done") == 0, "a scan took the empty folder for the library"
        reason = db_query(data, "SELECT reason FROM scans WHERE status = 'skipped' ORDER BY id DESC LIMIT 1")[0][0]
        assert "empty" in reason
        assert_nothing_offline_or_failed(data)

        # while the share is away, a phone keeps syncing onto the NAS
        make_photos(away, 5, start=20)
        junk.unlink(missing_ok=True)
        library.rmdir()
        away.rename(library)  # the share is mounted again
        wait_until(lambda: daemon.alive() and indexed(data) == 25, 60, what="the share's photos, old and new")
        assert_nothing_lost(data, 25)
    finally:
        if away.exists():
            junk.unlink(missing_ok=True)
            if library.exists():
                library.rmdir()
            away.rename(library)
        daemon.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI runs as root)")
def test_empty_file_system_mounted_over_the_library_marks_nothing_offline(library: Path, tmp_path: Path) -> None:
    """An empty file system mounted over the library (another device number, no inotify event at
    all for the folder being watched) while serving, then unmounted."""
    make_photos(library, 20)
    data = tmp_path / "data"
    daemon = Daemon(library, data, "--workers", "2", "--index-rescan-interval", "1")
    mounted = False
    try:
        wait_until(lambda: daemon.alive() and indexed(data) == 20, 120, what="the library to be indexed")
        before = last_scan_id(data)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(library)], check=True)
        mounted = True
        wait_until(lambda: daemon.alive() and scans_since(data, before, "skipped") >= 3, 60,
                   what="several scans of the empty file system")
        assert scans_since(data, before, "done") == 0, "a scan took the empty file system for the library"
        assert_nothing_offline_or_failed(data)
        subprocess.run(["umount", str(library)], check=True)
        mounted = False
        after = last_scan_id(data)
        wait_until(lambda: daemon.alive() and scans_since(data, after, "done") >= 1, 60,
                   what="a scan of the library once it is back")
        assert_nothing_lost(data, 20)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(library)], check=False)
        daemon.stop()


# -- a corrupt file: a verdict, until the file or the judge changes -------------------------------------


def run_index(library: Path, data: Path, *extra: str) -> dict[str, int]:
    """One `shoebox index`; the counts from its summary line."""
    result = shoebox("index", "--library", str(library), "--data", str(data), "--quiet", *extra)
    match = re.search(r"indexed (\d+) files .*?; (\d+) errors", result.stderr)
    assert match, result.stderr[-2000:]
    return {"indexed": int(match[1]), "errors": int(match[2])}


def broken_state(data: Path) -> sqlite3.Row:
    return db_query(data, "SELECT state, error, error_version, updated_at FROM files WHERE path_text = 'broken.jpg'")[0]


def test_corrupt_file_is_a_permanent_error_retried_only_when_something_changed(library: Path, tmp_path: Path) -> None:
    make_photos(library, 3)
    broken = library / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(3000))  # a JPEG signature, then garbage
    data = tmp_path / "data"

    assert run_index(library, data) == {"indexed": 3, "errors": 1}
    first = broken_state(data)
    assert first["state"] == "error" and first["error"] and "shoebox" in first["error_version"]

    # a verdict: the next runs do not try it again
    assert run_index(library, data) == {"indexed": 0, "errors": 0}
    assert broken_state(data)["error"] == first["error"]

    # ... until the file changes (still bad: judged again, still an error)
    broken.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(4000))
    assert run_index(library, data) == {"indexed": 0, "errors": 1}
    assert broken_state(data)["state"] == "error"

    # ... or the user asks
    assert run_index(library, data, "--retry-errors") == {"indexed": 0, "errors": 1}
    assert run_index(library, data) == {"indexed": 0, "errors": 0}

    # ... or the software that judged it is another version (as after an upgrade)
    with sqlite3.connect(data / "shoebox.db") as conn:
        conn.execute("UPDATE files SET error_version = 'shoebox 0.0.1, Pillow 9.0.0' WHERE path_text = 'broken.jpg'")
    assert run_index(library, data) == {"indexed": 0, "errors": 1}
    assert "shoebox 0.0.1" not in broken_state(data)["error_version"]

    # and once it is a good photo, it is one
    Image.new("RGB", (120, 80), (200, 40, 40)).save(broken, quality=90)
    assert run_index(library, data) == {"indexed": 1, "errors": 0}
    assert broken_state(data)["state"] == "indexed"


# -- the guard judges by what was known before the outage --------------------------------------------


async def test_guard_counts_offline_files_as_known_and_guards_partial_scans(library: Path, tmp_path: Path) -> None:
    """A store in which every photo is already offline (as an earlier outage left it) still knows
    them: an empty folder is not taken for the library by a full scan, nor by the watcher's
    partial scan of one folder, and when the drive is back nothing is lost."""
    from daemon.app import App
    from tests.integration.support import index, make_config

    make_photos(library, 6)
    data = tmp_path / "data"
    config = make_config(library, data)
    await index(config)
    with sqlite3.connect(data / "shoebox.db") as conn:
        conn.execute("UPDATE files SET offline = 1, missing_since = '2026-01-01T00:00:00Z'")
        conn.execute("UPDATE photos SET offline = 1")
    away = tmp_path / "unplugged"
    library.rename(away)
    library.mkdir()
    report = await index(config)
    assert report.status == "skipped" and "empty" in report.reason
    app = App(config)
    await app.start()
    try:
        partial = await app.scan([b"2021"])
    finally:
        await app.stop()
    assert partial.status == "skipped" and "empty" in (partial.reason or "")

    library.rmdir()
    away.rename(library)
    report = await index(config)
    assert report.status == "done" and report.online == 6
    assert_nothing_lost(data, 6)


async def test_another_drive_with_the_same_folder_names_is_refused_and_a_remount_is_not(library: Path,
                                                                                     tmp_path: Path) -> None:
    """Device numbers change: after a reboot the same drive may get another one (accepted, since
    the known files are on it), while another camera card with folders of the same names is
    refused. The device number is set in the store as a remount would change it."""
    from tests.integration.support import index, make_config

    make_photos(library, 6)
    data = tmp_path / "data"
    config = make_config(library, data)
    await index(config)

    def other_device() -> None:
        with sqlite3.connect(data / "shoebox.db") as conn:
            conn.execute("UPDATE meta SET value = '999999' WHERE key = 'library.device'")

    other_device()  # the same drive, remounted under another device number
    report = await index(config)
    assert report.status == "done" and report.offline == 0

    other_device()
    away = tmp_path / "first-drive"
    library.rename(away)
    make_photos(library, 2, start=100)  # another card: folders of the same names, other photos
    assert {"2021", "2022"} <= {p.name for p in library.iterdir()}
    report = await index(config)
    assert report.status == "skipped" and "different volume" in report.reason
    assert_nothing_offline_or_failed(data)

    for f in library.rglob("*.jpg"):
        f.unlink()
    for d in sorted(library.iterdir()):
        d.rmdir()
    library.rmdir()
    away.rename(library)
    report = await index(config)
    assert report.status == "done"
    assert_nothing_lost(data, 6)

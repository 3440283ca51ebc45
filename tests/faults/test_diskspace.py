"""The disk-space state on a real small disk: what counts as "no space", pause and resume."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from daemon.system.diskspace import DiskSpace, StorageFull, Volume, is_no_space, read_state_file
from tests.faults.fs import fill, resize, tmpfs
from tests.waiting import wait_until_async

# slow: fault tests: real full file systems (tmpfs)
pytestmark = pytest.mark.slow


def test_sqlite_and_file_writes_on_a_full_disk_count_as_no_space(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "1m") as disk:
        conn = sqlite3.connect(disk / "full.db")
        conn.execute("CREATE TABLE t (x BLOB)")
        try:
            for _ in range(1000):
                conn.execute("INSERT INTO t VALUES (randomblob(65536))")
                conn.commit()
            raise AssertionError("a 1 MB disk held 64 MB")
        except sqlite3.Error as exc:
            assert is_no_space(exc), repr(exc)
        finally:
            conn.close()
        try:
            fill(disk)
            (disk / "more").write_bytes(b"x" * 8192)
            raise AssertionError("wrote past a full disk")
        except OSError as exc:
            assert is_no_space(exc)
            wrapped = RuntimeError("thumbnail failed")
            wrapped.__cause__ = exc
            assert is_no_space(wrapped)
    assert not is_no_space(OSError(2, "No such file or directory"))
    assert not is_no_space(sqlite3.OperationalError("database is locked"))


async def test_pause_below_the_threshold_and_resume_when_there_is_room(tmp_path: Path) -> None:
    events: list[tuple[str, dict]] = []
    woken: list[bool] = []
    with tmpfs(tmp_path / "disk", "4m") as disk:
        space = DiskSpace([Volume("data", disk)], min_free_mib=2, state_file=disk / "shoebox.state",
                          on_change=lambda t, d: events.append((t, d)), poll_first=0.05, poll_max=0.2)
        space.listeners.append(lambda: woken.append(True))
        space.open_state_file()
        try:
            space.check_start()
            assert space.ready()
            (disk / "big").write_bytes(b"\0" * (3 << 20))  # 1 MB left: below the 2 MB kept free
            space._last_check = 0.0
            assert not space.ready() and space.paused
            try:
                space.check_start()
                raise AssertionError("check_start passed on a full disk")
            except StorageFull as exc:
                assert "the data disk is full" in str(exc)
            state = read_state_file(disk / "shoebox.state")
            assert state is not None and state["storage"]["volume"] == "data"
            assert space.status()["state"] == "full"
            resize(disk, "16m")
            await wait_until_async(lambda: not space.paused, timeout=10, what="the resume")
            assert woken == [True]
            assert [t for t, _ in events] == ["storage.full", "storage.ok"]
            assert read_state_file(disk / "shoebox.state")["storage"] is None  # type: ignore[index]
        finally:
            await space.stop()

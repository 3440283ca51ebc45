"""The job queue waits out transient failures instead of counting them (daemon.jobs.queue with a
real SQLite store; the handlers are this test's own job kinds)."""

from __future__ import annotations

import errno
from pathlib import Path

from daemon.jobs.failures import FILE_WAIT_LIMIT, LibraryUnavailable
from daemon.jobs.queue import Job, JobQueue, enqueue
from daemon.store.db import Database
from tests.waiting import wait_until_async


async def open_queue(tmp_path: Path, **handlers) -> tuple[Database, JobQueue, list[tuple[int, str]]]:  # type: ignore[no-untyped-def]
    db = await Database.open(tmp_path / "s.db")
    queue = JobQueue(db, concurrency=2, retries=0)
    failed: list[tuple[int, str]] = []

    async def on_failure(job: Job, reason: str) -> None:
        failed.append((job.id, reason))
        await db.execute_write("DELETE FROM jobs WHERE id = ?", (job.id,))

    for kind, handler in handlers.items():
        queue.register(kind, handler, on_failure)
    return db, queue, failed


async def test_an_io_error_waits_with_backoff_and_is_no_attempt(tmp_path: Path) -> None:
    async def dropping_share(job: Job) -> None:
        raise OSError(errno.EIO, "Input/output error")

    db, queue, failed = await open_queue(tmp_path, read=dropping_share)
    try:
        await db.write(lambda c: enqueue(c, "read", priority=1))
        queue.start()
        await wait_until_async(lambda: db.scalar("SELECT waits FROM jobs"), what="the job to wait")
        await queue.wait_idle()  # a waiting job is not runnable: a one-pass run may end
        row = await db.fetchone("SELECT attempts, waits, wait_reason, not_before, error FROM jobs")
        assert row["attempts"] == 0 and row["waits"] == 1 and row["wait_reason"] == "file"
        assert row["not_before"] and row["error"] == "Input/output error"
        assert await queue.waiting() == {"file": 1}
        assert not failed

        # a file that keeps failing like this while its drive reads fine is, in the end, an error
        await db.execute_write("UPDATE jobs SET waits = ?, not_before = NULL", (FILE_WAIT_LIMIT,))
        queue.wake()
        await wait_until_async(lambda: failed, what="the failure to be recorded")
        assert "Input/output error" in failed[0][1]
    finally:
        await queue.stop()
        await db.close()


async def test_a_missing_library_makes_every_job_of_its_kind_wait(tmp_path: Path) -> None:
    async def library_gone(job: Job) -> None:
        raise LibraryUnavailable("library folder /media/photos does not exist")

    async def other(job: Job) -> None:
        await db.execute_write("DELETE FROM jobs WHERE id = ?", (job.id,))

    db, queue, failed = await open_queue(tmp_path, index=library_gone, tag=other)

    def add(c):  # type: ignore[no-untyped-def]
        for _ in range(5):
            c.execute("INSERT INTO jobs (kind, priority, created_at, updated_at) VALUES ('index', 1, '', '')")
        enqueue(c, "tag", priority=50)

    try:
        await db.write(add)
        queue.start()
        await queue.wait_idle()
        rows = await db.fetchall("SELECT kind, wait_reason, not_before, attempts FROM jobs")
        assert [r["kind"] for r in rows] == ["index"] * 5, "the tag job should have run"
        assert all(r["wait_reason"] == "library" and r["not_before"] and r["attempts"] == 0 for r in rows)
        assert await queue.waiting() == {"library": 5}
        assert not failed
    finally:
        await queue.stop()
        await db.close()

"""Fixtures shared by every test: where the sample media is, and a scratch library to copy it into.

Tests read ../shared/samples but never write there: anything a test touches is copied first.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = Path(os.environ.get("SHOEBOX_SAMPLES", REPO.parent / "shared" / "samples")).resolve()


@pytest.fixture(scope="session")
def samples() -> Path:
    """The read-only sample media folder."""
    if not SAMPLES.is_dir():
        pytest.fail(f"sample media not found at {SAMPLES} (set SHOEBOX_SAMPLES)")
    return SAMPLES


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """An empty library folder for one test."""
    lib = tmp_path / "library"
    lib.mkdir()
    return lib


def copy_sample(samples_root: Path, rel: str, dest_dir: Path, name: str | None = None) -> Path:
    """Copy one sample file into dest_dir (keeping its mtime) and return the copy's path."""
    src = samples_root / rel
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / (name or src.name)
    shutil.copy2(src, dest)
    return dest


# -- no exception escapes a task unseen -------------------------------------------------------------

UNSEEN_EXCEPTION = "exception was never retrieved"  # asyncio's words for a task nobody awaited


class _UnseenTaskExceptions(logging.Handler):
    """Collects asyncio's "Task exception was never retrieved" reports (logged on the "asyncio"
    logger when such a task is garbage-collected)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is not what this handler looks for
            return
        if UNSEEN_EXCEPTION in message:
            exc = record.exc_info[1] if record.exc_info else None
            self.messages.append(f"{message}: {type(exc).__name__}: {exc}" if exc else message)


@pytest.fixture(autouse=True)
def no_unseen_task_exceptions() -> Iterator[None]:
    """Fail the test if an asyncio task of the in-process loop died with an exception nobody
    retrieved: such a failure is invisible in production (a log line at best), so a test that
    causes one must not pass. Subprocess daemons are checked by tests.integration.api_support.Daemon."""
    handler = _UnseenTaskExceptions()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    try:
        yield
        gc.collect()  # the report is made when the forgotten task is collected
    finally:
        logger.removeHandler(handler)
    if handler.messages:
        pytest.fail("an asyncio task failed and nobody retrieved its exception:\n" + "\n".join(handler.messages[:5]),
                    pytrace=False)

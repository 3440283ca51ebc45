"""Fixtures shared by every test: where the sample media is, and a scratch library to copy it into.

Tests read ../shared/samples but never write there: anything a test touches is copied first.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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

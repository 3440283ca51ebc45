"""Which failures are a verdict on a file and which are a state to wait out (daemon.jobs.failures)."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from daemon.jobs.failures import LibraryUnavailable, Permanent, Transient, backoff_s, classify, judging_version
from daemon.library.decode import DecodeError, DecodeLimits, decode


def real_oserror(path: Path) -> OSError:
    try:
        path.open("rb")
    except OSError as exc:
        return exc
    raise AssertionError("expected the open to fail")


def test_a_missing_file_is_transient_even_behind_a_decoder_error(tmp_path: Path) -> None:
    missing = real_oserror(tmp_path / "gone.jpg")
    assert classify(missing) == Transient("gone", "No such file or directory")
    with pytest.raises(DecodeError) as info:  # the decoder wraps it in its own error type
        decode(tmp_path / "gone.jpg", longest_needed=100, limits=DecodeLimits())
    assert isinstance(classify(info.value), Transient)


@pytest.mark.parametrize("code, scope", [
    (errno.EIO, "file"), (errno.ENODEV, "file"), (errno.ESTALE, "file"), (errno.ENOTCONN, "file"),
    (errno.ENOSPC, "storage"), (errno.EDQUOT, "storage"), (errno.ENOTDIR, "gone"),
])
def test_what_a_dropping_drive_or_a_full_disk_says_is_transient(code: int, scope: str) -> None:
    failure = classify(OSError(code, "x"))
    assert isinstance(failure, Transient) and failure.scope == scope


def test_a_full_database_and_a_missing_library_are_transient() -> None:
    assert classify(sqlite3.OperationalError("database or disk is full")).scope == "storage"  # type: ignore[union-attr]
    assert classify(LibraryUnavailable("library folder /x does not exist")) == Transient(
        "library", "library folder /x does not exist")


def test_a_file_read_and_found_bad_is_permanent(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 500)
    with pytest.raises(DecodeError) as info:
        decode(bad, longest_needed=100, limits=DecodeLimits())
    assert isinstance(classify(info.value), Permanent)
    assert isinstance(classify(PermissionError(errno.EACCES, "Permission denied")), Permanent)
    assert isinstance(classify(OSError("image file is truncated")), Permanent)  # Pillow: no errno
    assert isinstance(classify(ValueError("nonsense")), Permanent)


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_s("file", n) for n in (1, 2, 3)] == [5.0, 10.0, 20.0]
    assert backoff_s("library", 20) == 300.0
    assert backoff_s("file", 20) == 3600.0


def test_the_judging_version_names_shoebox_and_its_decoder() -> None:
    from daemon import __version__

    version = judging_version()
    assert f"shoebox {__version__}" in version and f"Pillow {Image.__version__}" in version

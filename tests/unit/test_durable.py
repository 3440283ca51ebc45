"""The registry of temporary names: every writer's names are in it, and the sweep removes exactly
those (the crash test in tests/faults/test_kill9.py plants one of each in a real daemon's folders)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from daemon.library.importer import temp_path
from daemon.system.durable import sweep_temp_files, temp_kind, temp_name


def test_every_writer_names_its_temporary_files_as_the_registry_knows_them(tmp_path: Path) -> None:
    # thumbnails, motion videos, import reports, the places database
    assert temp_kind(temp_name(tmp_path / "abcd_fit_720_0123456789.jpg").name, "data") is not None
    assert temp_kind(temp_name(tmp_path / "places.db").name + "-journal", "data") is not None
    # the folder a video's poster frame is cut into (daemon.library.render)
    with tempfile.TemporaryDirectory(prefix=".poster-", dir=tmp_path) as folder:
        assert temp_kind(Path(folder).name, "data") is not None
    # the gate's pinned links (daemon.library.gate: tempfile.mkdtemp(prefix="pin-"))
    folder = tempfile.mkdtemp(prefix="pin-", dir=tmp_path)
    assert temp_kind(Path(folder).name, "data") is not None
    # uploads and imports in the library
    for tag in ("upload", "import"):
        assert temp_kind(temp_path(tmp_path, tag, ".JPG").name, "library") is not None
        assert temp_kind(temp_path(tmp_path, tag).name, "library") is not None


def test_photos_and_the_users_own_hidden_files_are_not_temporary() -> None:
    for name in ("IMG_0001.jpg", ".DS_Store", ".notes.tmp.txt", "holiday.tmp", ".shoebox-upload.jpg"):
        assert temp_kind(name, "library") is None, name
    for name in ("shoebox.db", "shoebox.db-wal", "places.db", "secret.key", "shoebox.lock"):
        assert temp_kind(name, "data") is None, name


def test_the_sweep_removes_only_registered_names_and_spares_what_this_run_made(tmp_path: Path) -> None:
    library = tmp_path / "library"
    old = library / "2024" / ".shoebox-import-0123456789abcdef.part.jpg"
    new = library / "Uploads" / ".shoebox-upload-fedcba9876543210.part.jpg"
    photo = library / "2024" / "IMG_0001.jpg"
    for path in (old, new, photo):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    past = time.time() - 60
    os.utime(old, (past, past))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    stranger = outside / ".shoebox-import-0123456789abcdef.part.jpg"
    stranger.write_bytes(b"x")
    os.utime(stranger, (past, past))
    (library / "link").symlink_to(outside)  # a link out of the library is not followed

    assert sweep_temp_files(library, "library", older_than=time.time() - 1) == 1
    assert not old.exists() and new.exists() and photo.exists() and stranger.exists()

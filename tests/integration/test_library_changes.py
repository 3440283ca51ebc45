"""What happens to the index when the library changes under it: files vanish and come back, the
drive is unplugged, files move, odd names and odd files appear."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import copy_sample
from tests.integration.support import by_path, index, make_config, photos, query

JPEGS = ["exif-samples/jpg/Canon_40D.jpg", "exif-samples/jpg/Nikon_D70.jpg", "exif-samples/jpg/gps/DSCN0010.jpg",
         "exif-samples/jpg/Pentax_K10D.jpg"]


@pytest.fixture
def small_library(library: Path, samples: Path) -> Path:
    for rel in JPEGS:
        copy_sample(samples, rel, library / "2008")
    return library


async def test_vanished_file_is_offline_never_deleted_and_comes_back(small_library: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = make_config(small_library, data)
    await index(config)
    before = by_path(data)["2008/Canon_40D.jpg"]
    stash = tmp_path / "stash.jpg"
    shutil.move(small_library / "2008/Canon_40D.jpg", stash)
    report = await index(config)
    assert report.offline == 1
    gone = by_path(data)["2008/Canon_40D.jpg"]
    assert gone["offline"] is True and gone["files"][0]["offline"] is True
    assert gone["id"] == before["id"]
    assert len(photos(data)) == 4
    shutil.move(stash, small_library / "2008/Canon_40D.jpg")
    report = await index(config)
    assert report.online == 1
    back = by_path(data)["2008/Canon_40D.jpg"]
    assert back["offline"] is False and back["id"] == before["id"]


async def test_unplugged_drive_marks_nothing_offline_and_everything_comes_back(small_library: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = make_config(small_library, data)
    await index(config)
    ids = {p["id"] for p in photos(data)}

    # 1. the library folder disappears (drive unplugged, mount point gone)
    away = tmp_path / "unplugged"
    small_library.rename(away)
    report = await index(config)
    assert report.status == "skipped" and "does not exist" in report.reason
    assert all(not p["offline"] for p in photos(data))

    # 2. an empty mount point is left behind
    small_library.mkdir()
    report = await index(config)
    assert report.status == "skipped" and "empty" in report.reason
    assert all(not p["offline"] for p in photos(data))
    last = query(data, "SELECT status, reason FROM scans ORDER BY id DESC LIMIT 1")[0]
    assert last["status"] == "skipped" and "empty" in last["reason"]

    # 3. the drive comes back: everything is there, with the same ids, nothing re-created
    small_library.rmdir()
    away.rename(small_library)
    report = await index(config)
    assert report.status == "done"
    assert {p["id"] for p in photos(data)} == ids
    assert all(not p["offline"] for p in photos(data))


async def test_other_volume_at_the_mount_point_marks_nothing_offline(small_library: Path, tmp_path: Path, samples: Path) -> None:
    """Another drive with other photos mounted where the library was: refuse rather than mark all offline."""
    data = tmp_path / "data"
    config = make_config(small_library, data)
    await index(config)
    # Simulate "a different volume": record another device id for the library, and replace its content.
    query_db = data / "shoebox.db"
    import sqlite3
    with sqlite3.connect(query_db) as conn:
        conn.execute("UPDATE meta SET value = '999999' WHERE key = 'library.device'")
    away = tmp_path / "first-drive"
    small_library.rename(away)
    small_library.mkdir()
    copy_sample(samples, "exif-samples/jpg/Olympus_C8080WZ.jpg", small_library)
    report = await index(config)
    assert report.status == "skipped" and "different volume" in report.reason
    assert all(not p["offline"] for p in photos(data))


async def test_moved_and_renamed_file_keeps_its_identity(small_library: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = make_config(small_library, data)
    await index(config)
    before = by_path(data)["2008/Nikon_D70.jpg"]
    (small_library / "sorted" / "nikon").mkdir(parents=True)
    os.rename(small_library / "2008/Nikon_D70.jpg", small_library / "sorted/nikon/renamed.jpg")
    await index(config)
    after = by_path(data)
    assert "2008/Nikon_D70.jpg" not in after
    moved = after["sorted/nikon/renamed.jpg"]
    assert moved["id"] == before["id"]
    assert moved["offline"] is False
    assert len(photos(data)) == 4
    assert len(query(data, "SELECT id FROM files")) == 4, "the move left a stale or duplicate file row"


async def test_hidden_ignored_and_unknown_files_are_skipped(library: Path, tmp_path: Path, samples: Path) -> None:
    copy_sample(samples, "exif-samples/jpg/Canon_40D.jpg", library)
    copy_sample(samples, "exif-samples/jpg/Nikon_D70.jpg", library / ".hidden")
    copy_sample(samples, "exif-samples/jpg/Pentax_K10D.jpg", library, ".dotfile.jpg")
    copy_sample(samples, "exif-samples/jpg/Sony_HDR-HC3.jpg", library / "private")
    copy_sample(samples, "exif-samples/jpg/Kodak_CX7530.jpg", library / "trips", "draft-1.jpg")
    copy_sample(samples, "exif-samples/jpg/Olympus_C8080WZ.jpg", library / "trips")
    (library / "notes.txt").write_text("not a photo")
    (library / ".shoeboxignore").write_text("# keep these out\nprivate/\n")
    (library / "trips" / ".shoeboxignore").write_text("draft-*.jpg\n")
    data = tmp_path / "data"
    await index(make_config(library, data))
    assert sorted(by_path(data)) == ["Canon_40D.jpg", "trips/Olympus_C8080WZ.jpg"]


async def test_symlink_loop_and_linked_folder(library: Path, tmp_path: Path, samples: Path) -> None:
    copy_sample(samples, "exif-samples/jpg/Canon_40D.jpg", library / "a")
    os.symlink("..", library / "a" / "loop")  # a/loop -> library: a loop
    elsewhere = tmp_path / "elsewhere"
    copy_sample(samples, "exif-samples/jpg/Nikon_D70.jpg", elsewhere)
    os.symlink(elsewhere, library / "linked")
    data = tmp_path / "data"
    # a folder outside the library is followed only when the admin allowed it
    report = await index(make_config(library, data))
    assert report.status == "done"
    assert sorted(by_path(data)) == ["a/Canon_40D.jpg"]
    assert [rel for rel, _ in report.unreadable] == ["linked"]
    report = await index(make_config(library, data, index__allowed_link_targets=str(elsewhere)))
    assert report.status == "done"
    assert sorted(by_path(data)) == ["a/Canon_40D.jpg", "linked/Nikon_D70.jpg"]


async def test_odd_names_and_broken_files(library: Path, tmp_path: Path, samples: Path) -> None:
    data = tmp_path / "data"
    # a name that is not valid UTF-8 (as an old camera card or a Samba share may hold)
    raw_name = os.path.join(os.fsencode(library), b"caf\xe9-\xff.jpg")
    shutil.copyfile(samples / "exif-samples/jpg/Canon_40D.jpg", raw_name)
    (library / "empty.jpg").write_bytes(b"")
    jpeg = (samples / "exif-samples/jpg/gps/DSCN0012.jpg").read_bytes()
    (library / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (library / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2000))
    copy_sample(samples, "exif-samples/jpg/Nikon_D70.jpg", library)
    await index(make_config(library, data))

    files = {r["path_text"]: r for r in query(data, "SELECT path_text, state, error, photo_id FROM files")}
    odd = files["caf\\xe9-\\xff.jpg"]
    assert odd["state"] == "indexed" and odd["photo_id"] is not None
    assert files["empty.jpg"]["state"] == "error" and "empty" in files["empty.jpg"]["error"]
    assert files["garbage.png"]["state"] == "error" and files["garbage.png"]["error"]
    # a truncated JPEG still has its EXIF and most of its pixels: indexed, or an error with a reason
    truncated = files["truncated.jpg"]
    assert truncated["state"] == "indexed" or truncated["error"]
    assert files["Nikon_D70.jpg"]["state"] == "indexed"


async def test_decompression_bomb_is_refused_with_a_reason(library: Path, tmp_path: Path) -> None:
    """A PNG whose header claims 50000 x 50000 pixels is refused before any decoding."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    (library / "bomb.png").write_bytes(bomb)
    data = tmp_path / "data"
    await index(make_config(library, data))
    row = query(data, "SELECT state, error FROM files WHERE path_text = 'bomb.png'")[0]
    assert row["state"] == "error" and "pixels" in row["error"]


@pytest.mark.slow
def test_unreadable_file_is_recorded_and_the_run_goes_on(samples: Path) -> None:
    """chmod 000 stops everyone but root, so as root the indexer runs as `nobody` (setpriv), in a
    folder outside pytest's private (0700) temporary directory."""
    import tempfile
    tmp_path = Path(tempfile.mkdtemp(prefix="shoebox-unreadable-"))
    library = tmp_path / "library"
    library.mkdir()
    copy_sample(samples, "exif-samples/jpg/Canon_40D.jpg", library)
    copy_sample(samples, "exif-samples/jpg/Nikon_D70.jpg", library, "secret.jpg")
    os.chmod(library / "secret.jpg", 0)
    data = tmp_path / "data"
    data.mkdir()
    for d in (tmp_path, library, data):
        os.chmod(d, 0o777)
    os.chmod(library / "Canon_40D.jpg", 0o644)
    from tests.integration.support import REPO, SHOEBOX
    cmd = [*SHOEBOX, "index", "--library", str(library), "--data", str(data), "--quiet"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOEBOX_")}
    env["HOME"] = str(tmp_path)
    if os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = {r["path_text"]: r for r in query(data, "SELECT path_text, state, error FROM files")}
    assert rows["Canon_40D.jpg"]["state"] == "indexed"
    assert rows["secret.jpg"]["state"] == "error" and "cannot read" in rows["secret.jpg"]["error"]
    shutil.rmtree(tmp_path, ignore_errors=True)

"""User-level searches on real sample photos indexed by the real App (exiftool, places, analysis)."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest

from daemon.search import search, verify_search_index
from tests.integration.support import index, make_config

GPS = ["DSCN0010.jpg", "DSCN0012.jpg", "DSCN0021.jpg", "DSCN0025.jpg"]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> sqlite3.Connection:
    root = tmp_path_factory.mktemp("searchlib")
    library, data = root / "library", root / "data"
    (library / "gps").mkdir(parents=True)
    for f in (samples / "exif-samples/jpg").glob("*.jpg"):
        if f.name != "corrupted.jpg":
            shutil.copy2(f, library / f.name)
    for name in GPS:
        shutil.copy2(samples / "exif-samples/jpg/gps" / name, library / "gps" / name)
    shutil.copy2(samples / "exif-samples/jpg/orientation/landscape_1.jpg", library / "landscape_1.jpg")
    asyncio.run(index(make_config(library, data)))
    conn = sqlite3.connect(data / "shoebox.db")
    yield conn
    conn.close()


def files_of(conn: sqlite3.Connection, q: str, **kw: object) -> set[str]:
    page = search(conn, q, limit=500, **kw)
    assert page.next_cursor is None
    if not page.ids:
        return set()
    marks = ",".join("?" * len(page.ids))
    rows = conn.execute(f"SELECT f.path_text FROM files f JOIN photos p ON p.primary_file_id = f.id"
                        f" WHERE p.id IN ({marks})", page.ids).fetchall()
    return {r[0].rpartition("/")[2] for r in rows}


def test_country_finds_the_four_gps_photos(db: sqlite3.Connection) -> None:
    assert files_of(db, "country:it") == set(GPS)
    assert files_of(db, "country:Italy") == set(GPS)


def test_place_names_are_free_text(db: sqlite3.Connection) -> None:
    assert files_of(db, "arezzo") == set(GPS)
    assert files_of(db, "tuscany") == set(GPS)
    assert files_of(db, "city:arezzo state:tuscany") == set(GPS)


def test_camera_and_year(db: sqlite3.Connection) -> None:
    assert files_of(db, "camera:canon year:2008") == {"Canon_40D.jpg"}
    assert files_of(db, "camera:canon") == {"Canon_40D.jpg", "Canon_PowerShot_S40.jpg"}
    assert "Nikon_D70.jpg" in files_of(db, "camera:nikon")
    assert files_of(db, "camera:nikon") >= set(GPS)  # the DSCN photos are from a Nikon COOLPIX


def test_near_another_photo(db: sqlite3.Connection) -> None:
    uid = db.execute("SELECT p.uid FROM photos p JOIN files f ON f.id = p.primary_file_id"
                     " WHERE f.path_text = 'gps/DSCN0010.jpg'").fetchone()[0]
    near = files_of(db, f"near:{uid} dist:1")
    assert "DSCN0010.jpg" in near and near <= set(GPS)
    assert files_of(db, f"near:{uid} dist:50") == set(GPS)


def test_mono_and_folders(db: sqlite3.Connection) -> None:
    mono = files_of(db, "mono:yes")
    assert "Sony_HDR-HC3.jpg" in mono  # a nearly colourless frame
    assert not mono & (set(GPS) | {"Canon_40D.jpg"})  # colourful scenes are not
    assert files_of(db, "mono:no") == files_of(db, "") - mono
    assert files_of(db, "path:gps") == set(GPS)
    assert files_of(db, "filename:DSCN00*") == set(GPS)


def test_facets_and_index_integrity(db: sqlite3.Connection) -> None:
    page = search(db, "", facets=["country", "camera"], count=True)
    assert {"value": "IT", "count": 4} in page.facets["country"]
    assert page.total == len(files_of(db, ""))
    assert verify_search_index(db)


"""Indexing a real library of sample photos end to end: every format, exact camera values,
places, duplicates, thumbnails, bad files, and the export format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from daemon.library.thumbnails import INDEX_SIZES, ThumbSettings, thumb_path
from tests.integration.support import by_path, index, make_config, photos, query, shoebox

# slow: the whole sample folder indexed by the real shoebox command
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> tuple[Path, Path]:
    """The whole sample folder indexed once by the real command (module-scoped: it takes seconds)."""
    root = tmp_path_factory.mktemp("indexed")
    library, data = root / "library", root / "data"
    shutil.copytree(samples, library)
    result = shoebox("index", "--library", str(library), "--data", str(data), "--workers", "2")
    assert "indexed" in result.stderr
    return library, data


def test_every_sample_format_is_indexed_with_thumbnails(indexed: tuple[Path, Path]) -> None:
    library, data = indexed
    photos_by_path = by_path(data)
    expected = [
        "immich-test-assets/formats/heic/IMG_2682.heic",
        "immich-test-assets/formats/avif/8bit-sRGB.avif",
        "immich-test-assets/formats/jxl/8bit-sRGB.jxl",
        "immich-test-assets/formats/png/density_plot.png",
        "immich-test-assets/formats/webp/denali.webp",
        "immich-test-assets/formats/motionphoto/samsung-one-ui-6.heic",
        "exif-samples/heic/IMG_5195.HEIC",
        "exif-samples/heic/samplefilehub.heif",
        "exif-samples/tiff/Crémieux11.tiff",
        "exif-samples/tiff/BSG1.tiff",
    ]
    settings = ThumbSettings()
    for rel in expected:
        photo = photos_by_path.get(rel)
        assert photo is not None, f"{rel} was not indexed"
        assert photo["width"] and photo["height"], rel
        for size in INDEX_SIZES:
            thumb = thumb_path(data / "thumbs", photo["thumb_key"], size, settings)
            assert thumb.is_file(), f"{rel}: no {size} thumbnail"
        with Image.open(thumb_path(data / "thumbs", photo["thumb_key"], "fit_720", settings)) as im:
            assert max(im.size) == min(720, max(photo["width"], photo["height"]))
        with Image.open(thumb_path(data / "thumbs", photo["thumb_key"], "tile_224", settings)) as im:
            side = min(224, photo["width"], photo["height"])  # never upscaled
            assert im.size == (side, side)


def test_exact_camera_values(indexed: tuple[Path, Path]) -> None:
    """Values read once with `exiftool -j -n` and written here."""
    _, data = indexed
    p = by_path(data)
    canon = p["exif-samples/jpg/Canon_40D.jpg"]
    assert (canon["make"], canon["model"]) == ("Canon", "Canon EOS 40D")
    assert canon["taken_at"].startswith("2008-05-30T15:56:01")
    assert (canon["iso"], canon["f_number"], canon["exposure_time"], canon["focal_length"]) == (100, 7.1, 0.00625, 135)
    assert (canon["width"], canon["height"]) == (100, 68)
    assert canon["sources"]["taken_at"] == "exif"

    nikon = p["exif-samples/jpg/Nikon_D70.jpg"]
    assert (nikon["make"], nikon["model"], nikon["iso"], nikon["f_number"]) == ("NIKON CORPORATION", "NIKON D70", 200, 9)
    assert nikon["exposure_time"] == 0.005 and nikon["focal_length"] == 100
    assert nikon["taken_at"] == "2008-03-15T09:52:01"

    iphone = p["immich-test-assets/formats/heic/IMG_2682.heic"]
    assert (iphone["make"], iphone["model"], iphone["iso"], iphone["f_number"]) == ("Apple", "iPhone 7", 20, 1.8)
    assert iphone["lens"] == "iPhone 7 back camera 3.99mm f/1.8"  # from the MakerNotes/EXIF lens fields
    assert iphone["taken_at"].startswith("2019-03-21T11:04:22")
    assert (iphone["width"], iphone["height"]) == (4032, 3024)
    assert iphone["place"]["country_code"] == "US"


def test_gps_photos_resolve_to_country_and_city(indexed: tuple[Path, Path]) -> None:
    _, data = indexed
    p = by_path(data)
    for name in ("DSCN0010", "DSCN0012", "DSCN0021", "DSCN0025"):
        photo = p[f"exif-samples/jpg/gps/{name}.jpg"]
        assert photo["place"] == {"city": "Arezzo", "region": "Tuscany", "country": "Italy", "country_code": "IT"}
    dscn = p["exif-samples/jpg/gps/DSCN0010.jpg"]
    assert dscn["lat"] == pytest.approx(43.467448, abs=1e-5) and dscn["lng"] == pytest.approx(11.885127, abs=1e-5)
    # 39°6'54"N 108°24'3"W is just east of the Utah border, near Grand Junction, Colorado
    assert p["immich-test-assets/metadata/gps-position/thompson-springs.jpg"]["place"]["region"] == "Colorado"
    assert p["immich-test-assets/metadata/gps-position/empty_gps.jpg"]["place"] is None


def test_exact_duplicates_are_recorded_not_indexed_twice(indexed: tuple[Path, Path]) -> None:
    _, data = indexed
    # el_torcal_rocks is in the samples three times, byte for byte
    rows = query(data, "SELECT path_text, state, duplicate_of, photo_id FROM files WHERE path_text LIKE '%el_torcal_rocks.jp%g'")
    assert len(rows) == 3
    assert sorted(r["state"] for r in rows) == ["duplicate", "duplicate", "indexed"]
    original = next(r for r in rows if r["state"] == "indexed")
    assert all(r["photo_id"] is None and r["duplicate_of"] is not None for r in rows if r["state"] == "duplicate")
    assert len([p for p in photos(data) if any("el_torcal_rocks" in f["path"] for f in p["files"])]) == 1
    assert original["photo_id"] is not None


def test_bad_files_are_indexed_or_recorded_with_a_reason(indexed: tuple[Path, Path]) -> None:
    library, data = indexed
    bad = [p for p in (library / "exif-samples/jpg/invalid").iterdir()]
    bad += [p for p in (library / "exif-samples/jpg/tests").iterdir()]
    bad.append(library / "exif-samples/jpg/corrupted.jpg")
    for path in bad:
        rel = str(path.relative_to(library))
        rows = query(data, "SELECT state, error, photo_id FROM files WHERE path_text = ?", (rel,))
        assert len(rows) == 1, f"{rel} not seen"
        row = rows[0]
        assert row["state"] in ("indexed", "error"), rel
        if row["state"] == "error":
            assert row["error"], f"{rel}: an error without a reason"
        else:
            assert row["photo_id"] is not None


def test_sidecars_belong_to_their_photo(indexed: tuple[Path, Path]) -> None:
    _, data = indexed
    rows = query(data, "SELECT path_text, photo_id, role FROM files WHERE kind = 'sidecar'")
    assert rows, "the XMP sidecars in the samples were not seen"
    # the xmp/dates sidecars have no media file of the same name: they stay unattached
    assert all(r["photo_id"] is None for r in rows if "xmp/dates" in r["path_text"])


def test_export_is_one_json_array_with_every_field(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    library, data = indexed
    out = tmp_path / "export.json"
    shoebox("export", "--library", str(library), "--data", str(data), "--json", str(out))
    exported = json.loads(out.read_text())
    assert isinstance(exported, list) and len(exported) == len(photos(data))
    fields = {"id", "type", "taken_at", "taken_offset", "make", "model", "lens", "iso", "f_number",
              "exposure_time", "focal_length", "lat", "lng", "alt", "orientation", "width", "height", "rating",
              "title", "description", "keywords", "place", "main_color", "color_grid", "luminance", "chroma",
              "mono", "shape", "megapixels", "phash", "placeholder", "quality", "review", "files", "sources",
              "duration", "video_codec", "motion_video", "offline"}
    for photo in exported:
        assert fields <= photo.keys()
        assert photo["files"] and all({"path", "role", "sha1", "size", "state"} <= f.keys() for f in photo["files"])
    rated = next(p for p in exported if p["files"][0]["path"].endswith("mongolels.jpg"))
    assert rated["rating"] == 3  # xmp:Rating in the file, read once with exiftool
    picasa = next(p for p in exported if p["files"][0]["path"].endswith("picasa.jpg"))
    assert picasa["keywords"], "Picasa keywords were lost"


def test_status_counts_and_errors(indexed: tuple[Path, Path]) -> None:
    library, data = indexed
    out = shoebox("status", "--library", str(library), "--data", str(data)).stdout
    total = len(photos(data))
    assert f"photos    {total}" in out
    assert "duplicates" in out and "queue     failed 0" in out or "queue     empty" in out


async def test_reindex_after_edit_keeps_identity_and_higher_sources(library: Path, tmp_path: Path, samples: Path) -> None:
    """A re-index never lets a lower source overwrite a higher one (here: an XMP sidecar beats EXIF)."""
    src = samples / "exif-samples/jpg/Canon_40D.jpg"
    shutil.copy2(src, library / "a.jpg")
    data = tmp_path / "data"
    config = make_config(library, data)
    await index(config)
    first = by_path(data)["a.jpg"]
    assert first["taken_at"].startswith("2008-05-30")
    shutil.copy2(samples / "immich-test-assets/metadata/xmp/dates/2010.xmp", library / "a.jpg.xmp")
    await index(config)
    second = by_path(data)["a.jpg"]
    assert second["id"] == first["id"]
    assert second["sources"]["taken_at"] == "sidecar"
    assert second["taken_at"].startswith("2010")
    # the photo file changes (re-saved by another program): EXIF may not take the date back
    with Image.open(library / "a.jpg") as im:
        exif = im.getexif()
        im.save(library / "a.jpg", exif=exif, quality=90)
    await index(config)
    third = by_path(data)["a.jpg"]
    assert third["id"] == first["id"] and third["taken_at"].startswith("2010")

"""read_metadata on real camera, phone and broken files.

Expected values were read once with `exiftool -j -n FILE` and are written here as literals.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from daemon.library.exiftool import ExifTool
from daemon.library.metadata import Metadata, read_metadata
from daemon.library.sources import Source
from tests.conftest import copy_sample

JPG = "exif-samples/jpg"
IMMICH = "immich-test-assets"


@pytest.fixture(scope="module")
def exiftool():
    with ExifTool(timeout=30) as et:
        yield et


def read(samples: Path, rel: str, exiftool: ExifTool | None, **kw) -> Metadata:
    return read_metadata(samples / rel, exiftool=exiftool, **kw)


# -- cameras ---------------------------------------------------------------------------------------

CAMERAS = {
    "Canon_40D.jpg": dict(make="Canon", model="Canon EOS 40D", taken_at="2008-05-30T15:56:01.000", iso=100,
                          f_number=7.1, exposure_time=0.00625, focal_length=135, orientation=1, width=100, height=68),
    "Nikon_D70.jpg": dict(make="NIKON CORPORATION", model="NIKON D70", taken_at="2008-03-15T09:52:01", iso=200,
                          f_number=9, exposure_time=0.005, focal_length=100, orientation=1, width=100, height=66,
                          lens="100.0 mm f/2.8"),
    "Fujifilm_FinePix_E500.jpg": dict(make="FUJIFILM", model="FinePix E500", taken_at="2006-08-17T09:24:48", iso=100,
                                      f_number=2.9, exposure_time=0.0125, focal_length=4.7, orientation=1,
                                      width=59, height=100),
    "Pentax_K10D.jpg": dict(make="PENTAX Corporation", model="PENTAX K10D", taken_at="2008-05-04T16:47:24", iso=200,
                            f_number=11, exposure_time=0.005555555556, focal_length=90, orientation=1,
                            width=100, height=72),
    "Olympus_C8080WZ.jpg": dict(make="OLYMPUS CORPORATION", model="C8080WZ", taken_at="2006-10-22T15:44:29", iso=50,
                                f_number=2.8, exposure_time=0.00625, focal_length=15.8, orientation=1,
                                width=100, height=72),
    "tests/42_IndexError.jpg": dict(make="OLYMPUS IMAGING CORP.", model="E-P3", taken_at="2014-08-23T13:05:43",
                                    iso=1600, f_number=3.6, exposure_time=0.03333333333, focal_length=15,
                                    orientation=1, width=4032, height=3024,
                                    lens="Olympus M.Zuiko Digital 14-42mm F3.5-5.6 II R"),
}


@pytest.mark.parametrize("name", sorted(CAMERAS))
def test_camera_exif(samples: Path, exiftool: ExifTool, name: str) -> None:
    meta = read(samples, f"{JPG}/{name}", exiftool)
    for field, expected in CAMERAS[name].items():
        value = meta.get(field)
        if isinstance(expected, float):
            assert value == pytest.approx(expected, rel=1e-6), field
        else:
            assert value == expected, field
    assert meta.source("model") in (Source.EXIF, Source.XMP)


def test_pentax_zone_comes_from_its_xmp(samples: Path, exiftool: ExifTool) -> None:
    meta = read(samples, f"{JPG}/Pentax_K10D.jpg", exiftool)
    # XMP-exif:DateTimeDigitized 2008:05:04 16:47:24+09:00: same moment, with its zone
    assert meta.get("taken_offset") == 540
    assert meta.get("taken_at_utc") == "2008-05-04T07:47:24Z"


def test_plain_jpeg_does_not_need_exiftool(samples: Path) -> None:
    et = ExifTool()
    meta = read(samples, f"{JPG}/Canon_40D.jpg", et)
    assert meta.get("model") == "Canon EOS 40D"
    assert not et.running  # no MakerNote lens to look up: ExifTool was never started
    et.close()


def test_lens_from_maker_notes_needs_exiftool(samples: Path, exiftool: ExifTool) -> None:
    without = read(samples, f"{JPG}/tests/42_IndexError.jpg", None)
    assert without.get("lens") is None and without.get("model") == "E-P3"
    with_et = read(samples, f"{JPG}/tests/42_IndexError.jpg", exiftool)
    assert with_et.get("lens") == "Olympus M.Zuiko Digital 14-42mm F3.5-5.6 II R"


# -- GPS -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "lat", "lng"),
    [
        ("DSCN0010.jpg", 43.4674483333333, 11.8851266666639),
        ("DSCN0012.jpg", 43.4671566666639, 11.8853949999972),
        ("DSCN0021.jpg", 43.4670816666639, 11.8845383333306),
        ("DSCN0025.jpg", 43.468365, 11.8816349999722),
    ],
)
def test_gps_position(samples: Path, name: str, lat: float, lng: float) -> None:
    meta = read(samples, f"{JPG}/gps/{name}", None)
    assert round(meta.get("lat"), 5) == round(lat, 5)
    assert round(meta.get("lng"), 5) == round(lng, 5)
    assert meta.source("lat") is Source.EXIF


def test_western_hemisphere_and_altitude(samples: Path) -> None:
    meta = read(samples, f"{IMMICH}/metadata/gps-position/thompson-springs.jpg", None)
    assert round(meta.get("lat"), 5) == 39.115
    assert round(meta.get("lng"), 5) == round(-108.400968333333, 5)
    assert meta.get("alt") == pytest.approx(1483.9)


def test_empty_gps_gives_no_position(samples: Path) -> None:
    meta = read(samples, f"{IMMICH}/metadata/gps-position/empty_gps.jpg", None)
    assert meta.get("lat") is None and meta.get("lng") is None and meta.get("alt") is None
    assert meta.get("model") == "moto g(9) plus"


# -- dates -----------------------------------------------------------------------------------------

def test_date_original_wins_over_other_dates(samples: Path) -> None:
    # DateTimeOriginal 02-02, CreateDate 04-04, XMP GPSDateTime 08-08, pdf:CreationDate 05-05
    meta = read(samples, f"{IMMICH}/metadata/dates/date-priority-test.jpg", None)
    assert meta.get("taken_at") == "2023-02-02T02:00:00"
    assert meta.source("taken_at") is Source.EXIF


def test_time_without_date_falls_back_to_file_time(samples: Path) -> None:
    # only IPTC TimeCreated 14:30:00: no day, so the file time is the estimate
    meta = read(samples, f"{IMMICH}/metadata/dates/time-created.jpg", None, mtime=1_600_000_000.0)
    assert meta.source("taken_at") is Source.ESTIMATE
    assert meta.get("taken_at_utc") == "2020-09-13T12:26:40Z"
    local = dt.datetime.fromtimestamp(1_600_000_000)
    assert meta.get("taken_at") == local.isoformat(timespec="seconds")


def test_gps_datetime_is_the_last_camera_date(samples: Path) -> None:
    meta = read(samples, f"{IMMICH}/metadata/dates/gps-datetime.jpg", None)
    assert meta.get("taken_at_utc") == "2023-11-15T12:30:00Z"  # XMP-exif:GPSDateTime ...Z
    assert meta.source("taken_at") is Source.EXIF


def test_datetime_original_without_zone(samples: Path) -> None:
    meta = read(samples, f"{IMMICH}/metadata/dates/datetimeoriginal-gps.jpg", None)
    assert meta.get("taken_at") == "2025-12-01T11:30:00"
    assert meta.get("taken_offset") is None  # no zone anywhere: unknown, not guessed


def test_zone_from_iptc_of_the_same_second(samples: Path) -> None:
    # XMP photoshop:DateCreated 2022:01:10 15:15:44.31 (no zone); IPTC 15:15:44-04:00
    meta = read(samples, f"{IMMICH}/metadata/gps-position/thompson-springs.jpg", None)
    assert meta.get("taken_at") == "2022-01-10T15:15:44.310"
    assert meta.source("taken_at") is Source.XMP
    assert meta.get("taken_offset") == -240


def test_offset_time_original(samples: Path) -> None:
    meta = read(samples, "exif-samples/heic/IMG_5195.HEIC", None)
    # DateTimeOriginal 2021:04:11 15:47:53, OffsetTimeOriginal -05:00
    assert meta.get("taken_at") == "2021-04-11T15:47:53"
    assert meta.get("taken_offset") == -300


def test_date_in_file_name_when_exif_has_none(samples: Path, tmp_path: Path) -> None:
    photo = copy_sample(samples, f"{IMMICH}/metadata/dates/time-created.jpg", tmp_path, "IMG_20190705_153012.jpg")
    meta = read_metadata(photo, exiftool=None)
    assert meta.get("taken_at") == "2019-07-05T15:30:12"
    assert meta.source("taken_at") is Source.FILENAME
    assert meta.get("taken_offset") is None


def test_exif_date_beats_file_name(samples: Path, tmp_path: Path) -> None:
    photo = copy_sample(samples, f"{JPG}/Canon_40D.jpg", tmp_path, "IMG_20190705_153012.jpg")
    assert read_metadata(photo, exiftool=None).get("taken_at") == "2008-05-30T15:56:01.000"


def test_file_time_is_an_estimate(samples: Path, tmp_path: Path) -> None:
    photo = copy_sample(samples, f"{JPG}/invalid/image00971.jpg", tmp_path, "scan.png")
    photo.write_bytes(b"")  # nothing readable at all
    os.utime(photo, (1_500_000_000, 1_500_000_000))
    meta = read_metadata(photo, exiftool=None)
    assert meta.source("taken_at") is Source.ESTIMATE
    assert meta.get("taken_at_utc") == "2017-07-14T02:40:00Z"
    assert meta.warnings


# -- descriptive fields ----------------------------------------------------------------------------

def test_rating_title_description(samples: Path) -> None:
    meta = read(samples, f"{IMMICH}/metadata/rating/mongolels.jpg", None)
    assert meta.get("rating") == 3
    assert meta.get("title") == "Mongol Els"
    assert meta.get("description") == "Mongol Els"
    assert meta.source("rating") is Source.XMP


def test_picasa_keywords_from_iptc(samples: Path) -> None:
    meta = read(samples, f"{IMMICH}/metadata/tags/picasa.jpg", None)
    assert meta.get("keywords") == ["Frost", "Yard"]
    assert meta.get("description") == "Image-Description"


def test_blue_square_xmp(samples: Path) -> None:
    meta = read(samples, f"{JPG}/xmp/BlueSquare.jpg", None)
    assert meta.get("title") == "Blue Square Test File - .jpg"
    assert meta.get("description") == ("XMPFiles BlueSquare test file, created in Photoshop CS2, "
                                       "saved as .psd, .jpg, and .tif.")
    assert meta.get("keywords") == ["XMP", "Blue Square", "test file", "Photoshop", ".jpg"]
    assert meta.get("taken_at") == "2005-09-07T15:07:40"  # xmp:CreateDate 2005:09:07 15:07:40-07:00
    assert meta.get("taken_offset") == -420
    assert meta.source("title") is Source.XMP


def test_long_description_kept_whole(samples: Path) -> None:
    meta = read(samples, f"{JPG}/long_description.jpg", None)
    text = meta.get("description")
    assert text.startswith("Operation Mountain Viper put the soldiers of A Company")
    assert text.endswith("(U.S. Army photo by Staff Sgt. Kyle Davis) (Released)")
    assert meta.get("title") == "030904-A-2140D-006"


def test_description_that_repeats_the_camera_is_dropped(samples: Path) -> None:
    meta = read(samples, f"{JPG}/Samsung_Digimax_i50_MP3.jpg", None)
    assert meta.get("model") == "<Digimax i50 MP3, Samsung #1 MP3>"
    assert meta.get("description") is None


# -- formats ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("rel", "width", "height", "mime"),
    [
        ("exif-samples/heic/IMG_5195.HEIC", 2566, 3313, "image/heif"),
        ("exif-samples/heic/samplefilehub.heif", 640, 426, "image/heif"),
        (f"{IMMICH}/formats/heic/IMG_2682.heic", 4032, 3024, "image/heif"),
        # EXIF orientation 6 already applied by the HEIF transform: shown portrait, once
        (f"{IMMICH}/formats/motionphoto/samsung-one-ui-6.heic", 3000, 4000, "image/heif"),
        ("exif-samples/tiff/Crémieux11.tiff", 199, 47, "image/tiff"),
        ("exif-samples/tiff/BSG1.tiff", 635, 348, "image/tiff"),
        (f"{IMMICH}/formats/png/density_plot.png", 800, 800, "image/png"),
        (f"{IMMICH}/formats/webp/denali.webp", 600, 315, "image/webp"),
        (f"{IMMICH}/formats/avif/8bit-sRGB.avif", 1617, 1080, "image/avif"),
        (f"{IMMICH}/formats/jxl/8bit-sRGB.jxl", 1440, 1080, "image/jxl"),
    ],
)
def test_formats_give_their_size(samples: Path, exiftool: ExifTool, rel: str, width: int, height: int,
                                 mime: str) -> None:
    meta = read(samples, rel, exiftool)
    assert (meta.get("width"), meta.get("height")) == (width, height)
    assert meta.get("mime") == mime
    assert meta.get("taken_at")  # at least the file time


def test_heic_camera_fields(samples: Path, exiftool: ExifTool) -> None:
    meta = read(samples, f"{IMMICH}/formats/heic/IMG_2682.heic", exiftool)
    assert meta.get("make") == "Apple" and meta.get("model") == "iPhone 7"
    assert meta.get("lens") == "iPhone 7 back camera 3.99mm f/1.8"
    assert meta.get("taken_at").startswith("2019-03-21T11:04:22")


def test_orientation_swaps_size(samples: Path) -> None:
    meta = read(samples, f"{IMMICH}/metadata/faces/portrait-orientation-6.jpg", None)
    assert meta.get("orientation") == 6
    # stored 700x840 (exiftool File:ImageWidth/Height), shown turned by a quarter
    assert (meta.get("width"), meta.get("height")) == (840, 700)


def test_apple_still_gets_its_live_photo_id(samples: Path, exiftool: ExifTool) -> None:
    # Apple MakerNotes tag 0x0011 (ExifTool 12.57 names it MediaGroupUUID); ExifTool cannot add
    # it to a file that lacks it, so the real iPhone HEIC stands for a Live Photo still
    meta = read(samples, "exif-samples/heic/IMG_5195.HEIC", exiftool)
    assert meta.get("content_identifier") == "570F1469-09C7-4E50-9875-05F21D5BD166"
    assert read(samples, "exif-samples/heic/IMG_5195.HEIC", None).get("content_identifier") is None


# -- bad input -------------------------------------------------------------------------------------

def _bad_files(samples: Path) -> list[str]:
    root = samples / JPG
    names = [f"invalid/{p.name}" for p in sorted((root / "invalid").iterdir())]
    names += [f"tests/{p.name}" for p in sorted((root / "tests").iterdir())]
    return names + ["corrupted.jpg"]


def test_every_broken_sample_gives_metadata(samples: Path, exiftool: ExifTool) -> None:
    for rel in _bad_files(samples):
        meta = read(samples, f"{JPG}/{rel}", exiftool)
        assert isinstance(meta, Metadata), rel
        assert meta.get("width") and meta.get("height"), rel
        assert meta.get("taken_at"), rel


def test_zero_byte_file(tmp_path: Path, exiftool: ExifTool) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    meta = read_metadata(empty, exiftool=exiftool, mtime=1_600_000_000.0)
    assert meta.get("width") is None
    assert meta.source("taken_at") is Source.ESTIMATE
    assert any("empty.jpg" in w for w in meta.warnings)


def test_truncated_jpeg(samples: Path, tmp_path: Path, exiftool: ExifTool) -> None:
    data = (samples / f"{JPG}/gps/DSCN0010.jpg").read_bytes()
    for cut in (20, 300, 5000, len(data) // 2):
        part = tmp_path / f"cut{cut}.jpg"
        part.write_bytes(data[:cut])
        meta = read_metadata(part, exiftool=exiftool, mtime=1_600_000_000.0)
        assert meta.get("taken_at"), cut
    # cut after the EXIF block: the camera data is still all there
    assert read_metadata(part, exiftool=exiftool).get("model") == "COOLPIX P6000"


def test_invalid_utf8_file_name(samples: Path, tmp_path: Path, exiftool: ExifTool) -> None:
    raw = os.fsencode(tmp_path) + b"/IMG_\xff\xfe_Canon.jpg"
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, (samples / f"{JPG}/Canon_PowerShot_S40.jpg").read_bytes())
    os.close(fd)
    meta = read_metadata(Path(os.fsdecode(raw)), exiftool=exiftool)
    assert meta.get("model") == "Canon PowerShot S40"
    assert meta.get("iso") == 100  # only in the MakerNotes: ExifTool read the odd name too


def test_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        read_metadata(tmp_path / "gone.jpg", exiftool=None)


def test_exiftool_timeout_becomes_a_warning(samples: Path, tmp_path: Path) -> None:
    raw = copy_sample(samples, "exif-samples/heic/IMG_5195.HEIC", tmp_path)
    with ExifTool(timeout=0.005) as et:  # shorter than ExifTool's start: always times out
        meta = read_metadata(raw, exiftool=et)
    assert meta.get("model") == "iPhone 11 Pro Max"  # Pillow's part survives
    assert any("exiftool took more than" in w for w in meta.warnings)


def test_raw_without_exiftool_is_a_warning(samples: Path, tmp_path: Path) -> None:
    raw = copy_sample(samples, f"{JPG}/Canon_40D.jpg", tmp_path, "IMG_0001.CR2")
    meta = read_metadata(raw, exiftool=None)
    assert any("needs ExifTool" in w for w in meta.warnings)


def test_raw_through_exiftool(samples: Path, tmp_path: Path, exiftool: ExifTool) -> None:
    # a TIFF-structured file read on the RAW path: everything comes from ExifTool's JSON
    raw = copy_sample(samples, f"{JPG}/gps/DSCN0010.jpg", tmp_path, "DSCN0010.NEF")
    meta = read_metadata(raw, exiftool=exiftool)
    assert meta.get("model") == "COOLPIX P6000"
    assert meta.get("taken_at") == "2008-10-22T16:28:39"
    assert round(meta.get("lat"), 5) == round(43.4674483333333, 5)
    assert (meta.get("width"), meta.get("height")) == (640, 480)
    assert meta.get("iso") == 64

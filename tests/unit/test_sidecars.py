"""XMP sidecars and Google Takeout JSON: which files belong to a photo, and what they change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.library.metadata import read_metadata
from daemon.library.sidecars import possible_sidecar_names, read_sidecar, sidecar_candidates
from daemon.library.sources import Source
from tests.conftest import copy_sample

CANON = "exif-samples/jpg/Canon_40D.jpg"  # DateTimeOriginal 2008:05:30 15:56:01
DATES = "immich-test-assets/metadata/xmp/dates"


@pytest.mark.parametrize(("xmp", "year"), [("2000.xmp", 2000), ("2010.xmp", 2010), ("2020.xmp", 2020)])
def test_xmp_sidecar_date_beats_exif(samples: Path, library: Path, xmp: str, year: int) -> None:
    # Lightroom sidecars in UTF-16: xmp:CreateDate YYYY-09-27T14:35:33+02:00
    photo = copy_sample(samples, CANON, library, "photo.jpg")
    sidecar = copy_sample(samples, f"{DATES}/{xmp}", library, "photo.jpg.xmp")
    meta = read_metadata(photo, exiftool=None, sidecars=sidecar_candidates(photo))
    assert sidecar_candidates(photo) == [sidecar]
    assert meta.get("taken_at") == f"{year}-09-27T14:35:33"
    assert meta.get("taken_offset") == 120
    assert meta.source("taken_at") is Source.SIDECAR
    assert meta.get("model") == "Canon EOS 40D"  # the sidecar has no camera: EXIF stays


def test_sidecar_named_after_the_stem(samples: Path, library: Path) -> None:
    photo = copy_sample(samples, CANON, library, "IMG_0001.JPG")
    sidecar = copy_sample(samples, f"{DATES}/2010.xmp", library, "IMG_0001.xmp")
    assert sidecar_candidates(photo) == [sidecar]
    assert read_metadata(photo, exiftool=None, sidecars=[sidecar]).get("taken_at") == "2010-09-27T14:35:33"


def test_iso_given_as_an_array(samples: Path, library: Path) -> None:
    photo = copy_sample(samples, CANON, library, "photo.jpg")
    sidecar = copy_sample(samples, "immich-test-assets/problems/xmp/iso-value-array/iso-value-array.xmp",
                          library, "photo.jpg.xmp")
    meta = read_metadata(photo, exiftool=None, sidecars=[sidecar])
    assert meta.get("iso") == 160  # <exif:ISOSpeedRatings><rdf:Seq><rdf:li>160
    assert meta.source("iso") is Source.SIDECAR
    assert meta.get("model") == "Canon PowerShot SX120 IS"
    assert meta.get("f_number") == pytest.approx(2.8)
    assert meta.get("exposure_time") == pytest.approx(1 / 1250)
    assert meta.get("lat") == pytest.approx(40 + 14.0786450 / 60)  # "40,14.0786450N"
    assert meta.get("lng") == pytest.approx(-(76 + 17.2284900 / 60))  # "76,17.2284900W"
    assert meta.get("description") is None  # whitespace only
    assert meta.get("taken_at") == "2009-11-28T13:42:39"


def test_lightroom_style_sidecar(library: Path, samples: Path) -> None:
    photo = copy_sample(samples, CANON, library, "photo.jpg")
    sidecar = library / "photo.xmp"
    sidecar.write_text("""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF
      xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
     <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"
       xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
       xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" xmp:Rating="4"
       photoshop:DateCreated="2011-02-03T04:05:06.5">
      <dc:title><rdf:Alt><rdf:li xml:lang="de">Strand</rdf:li><rdf:li xml:lang="x-default">Beach</rdf:li></rdf:Alt></dc:title>
      <dc:subject><rdf:Bag><rdf:li>sea</rdf:li><rdf:li>Sand</rdf:li></rdf:Bag></dc:subject>
      <lr:hierarchicalSubject><rdf:Bag><rdf:li>Places|Europe|Sea</rdf:li><rdf:li>People|Anna</rdf:li></rdf:Bag></lr:hierarchicalSubject>
     </rdf:Description></rdf:RDF></x:xmpmeta>""", encoding="utf-8")
    meta = read_metadata(photo, exiftool=None, sidecars=sidecar_candidates(photo))
    assert meta.get("rating") == 4
    assert meta.get("title") == "Beach"
    assert meta.get("keywords") == ["sea", "Sand", "Anna"]  # "Sea" is a duplicate of "sea"
    assert meta.get("taken_at") == "2011-02-03T04:05:06.500"


def test_broken_and_hostile_xmp_sidecars_are_warnings(samples: Path, library: Path) -> None:
    photo = copy_sample(samples, CANON, library, "photo.jpg")
    broken = library / "photo.jpg.xmp"
    broken.write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><oops></x:xmpmeta>')
    bomb = library / "photo.xmp"
    bomb.write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
                    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&b;</x:xmpmeta>')
    meta = read_metadata(photo, exiftool=None, sidecars=[broken, bomb])
    assert meta.get("taken_at") == "2008-05-30T15:56:01.000"  # EXIF still read
    assert any("photo.jpg.xmp" in w and "well-formed" in w for w in meta.warnings)
    assert any("photo.xmp" in w and "DOCTYPE" in w for w in meta.warnings)


def _takeout(path: Path, **doc) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_takeout_json_fills_what_exif_lacks(samples: Path, library: Path) -> None:
    photo = copy_sample(samples, "immich-test-assets/metadata/dates/time-created.jpg", library, "beach.jpg")
    sidecar = _takeout(library / "beach.jpg.json", title="beach.jpg", description="Sunset at the dunes",
                       photoTakenTime={"timestamp": "1562333412", "formatted": "Jul 5, 2019"},
                       geoData={"latitude": 52.3731, "longitude": 4.8922, "altitude": 2.0},
                       geoDataExif={"latitude": 0.0, "longitude": 0.0, "altitude": 0.0})
    assert sidecar_candidates(photo) == [sidecar]
    meta = read_metadata(photo, exiftool=None, sidecars=[sidecar])
    assert meta.get("taken_at_utc") == "2019-07-05T13:30:12Z"
    assert meta.source("taken_at") is Source.JSON
    assert (meta.get("lat"), meta.get("lng")) == (52.3731, 4.8922)
    assert meta.get("description") == "Sunset at the dunes"
    assert meta.get("title") is None  # Takeout's title is only the file name


def test_takeout_zero_position_and_exif_wins(samples: Path, library: Path) -> None:
    photo = copy_sample(samples, "exif-samples/jpg/gps/DSCN0010.jpg", library)
    sidecar = _takeout(library / "DSCN0010.jpg.json", photoTakenTime={"timestamp": "1262304000"},
                       geoData={"latitude": 0.0, "longitude": 0.0})
    result = read_sidecar(sidecar, photo)
    assert [name for name, _v, _r in result.values] == ["taken_at"]  # 0,0 means no position
    meta = read_metadata(photo, exiftool=None, sidecars=[sidecar])
    assert meta.get("taken_at") == "2008-10-22T16:28:39"  # the camera beats Google's JSON
    assert meta.source("taken_at") is Source.EXIF


def test_not_takeout_json_is_a_warning(library: Path) -> None:
    other = _takeout(library / "photo.jpg.json", foo=1)
    assert "not Google Takeout" in read_sidecar(other).warnings[0]
    (library / "bad.jpg.json").write_text("{not json")
    assert "not valid JSON" in read_sidecar(library / "bad.jpg.json").warnings[0]


def test_takeout_name_variants(library: Path) -> None:
    assert "photo.jpg.json" in possible_sidecar_names("photo.jpg")
    assert "photo.jpg.supplemental-metadata.json" in possible_sidecar_names("photo.jpg")
    assert "photo.jpg(1).json" in possible_sidecar_names("photo(1).jpg")
    assert "photo.jpg.json" in possible_sidecar_names("photo-edited.jpg")
    long_name = "Screenshot_2019-07-05-15-30-12-123_com.example.app.jpg"  # 55 characters
    truncated = long_name[:46] + ".json"
    assert truncated in possible_sidecar_names(long_name)
    media = library / long_name
    media.write_bytes(b"")
    (library / truncated).write_text("{}")
    (library / "unrelated.json").write_text("{}")
    assert sidecar_candidates(media) == [library / truncated]


def test_candidates_only_list_existing_files(samples: Path, library: Path) -> None:
    photo = copy_sample(samples, CANON, library, "a.jpg")
    copy_sample(samples, CANON, library, "b.jpg")
    (library / "b.jpg.xmp").write_text("")
    assert sidecar_candidates(photo) == []
    (library / "a.xmp").write_text("")
    (library / "a.jpg.json").write_text("{}")
    assert sidecar_candidates(photo) == [library / "a.xmp", library / "a.jpg.json"]

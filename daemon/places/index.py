"""Nearest-place lookups in the places database built by :mod:`daemon.places.geonames`.

Nothing is loaded into memory: each lookup asks the R*Tree for the places inside a small
box around the point, widens the box until a candidate lies within the box's inscribed circle
(then no place outside the box can be nearer) or ``max_km`` is reached, and ranks the few
candidates by great-circle distance in Python.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from daemon.places.geonames import name_key

#: Mean Earth radius (IUGG), km.
EARTH_RADIUS_KM = 6371.0088

#: First search radius. Most photos are taken in towns, where a place lies within a few km;
#: small boxes keep the candidate list short in dense cities.
START_RADIUS_KM = 4.0

_QUERY = (
    "SELECT p.name, p.admin1, p.country, p.cc, p.lat, p.lng"
    " FROM places_rtree AS r JOIN places AS p ON p.id = r.id"
    " WHERE r.max_lat >= ? AND r.min_lat <= ? AND r.max_lng >= ? AND r.min_lng <= ?"
)


_SEARCH = (
    "SELECT name, admin1, admin2, country, cc, lat, lng FROM places"
    " WHERE key >= ? AND key < ? ORDER BY key LIMIT ?"
)

#: Most rows one search reads from the name index: a prefix of one letter matches ~10,000
#: places; the best few are among the first (a name sorts before its longer extensions).
SEARCH_SCAN = 2000


class PlacesError(Exception):
    """The places database is missing, unreadable or not a places database."""


@dataclass(frozen=True)
class Place:
    """The place nearest to a photo; ``lat``/``lng`` are the place's own, not the photo's."""

    city: str
    region: str
    country: str
    country_code: str
    distance_km: float
    lat: float
    lng: float


@dataclass(frozen=True)
class Found:
    """A place found by name: where it is, to put a photo there."""

    name: str
    region: str
    country: str
    country_code: str
    lat: float
    lng: float


def haversine_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in km; correct across the antimeridian (only sines of differences)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dphi = p2 - p1
    dlam = math.radians(lng2 - lng1)
    h = math.sin(dphi / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def bounding_boxes(lat: float, lng: float, radius_km: float) -> list[tuple[float, float, float, float]]:
    """Boxes (min_lat, max_lat, min_lng, max_lng) that together hold every point within radius_km.

    Tight box of a spherical cap (J. Matuschek, "Finding Points Within a Distance of a
    Latitude/Longitude"): a cap that reaches a pole spans all longitudes; one that crosses the
    antimeridian is split into two boxes, one each side of ±180.
    """
    d = radius_km / EARTH_RADIUS_KM
    phi = math.radians(lat)
    min_phi, max_phi = phi - d, phi + d
    if min_phi <= -math.pi / 2 or max_phi >= math.pi / 2:
        min_lat = math.degrees(max(min_phi, -math.pi / 2))
        max_lat = math.degrees(min(max_phi, math.pi / 2))
        return [(min_lat, max_lat, -180.0, 180.0)]
    dlam = math.degrees(math.asin(min(1.0, math.sin(d) / math.cos(phi))))
    min_lat, max_lat = math.degrees(min_phi), math.degrees(max_phi)
    if dlam >= 180.0:
        return [(min_lat, max_lat, -180.0, 180.0)]
    lo, hi = lng - dlam, lng + dlam
    if lo < -180.0:
        return [(min_lat, max_lat, lo + 360.0, 180.0), (min_lat, max_lat, -180.0, hi)]
    if hi > 180.0:
        return [(min_lat, max_lat, lo, 180.0), (min_lat, max_lat, -180.0, hi - 360.0)]
    return [(min_lat, max_lat, lo, hi)]


class PlaceIndex:
    """Looks places up with SQL in the places database; one sqlite3 connection per thread (worker
    threads call lookup); read-only (opened with a mode=ro URI), so readers never block a rebuild,
    which replaces the file by rename."""

    def __init__(self, db_path: Path) -> None:
        self._path = Path(db_path)
        if not self._path.is_file():
            raise PlacesError(f"places database not found: {self._path} (build it with build_places_db)")
        self._uri = f"{self._path.resolve().as_uri()}?mode=ro"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        conn = self._connection()
        try:
            conn.execute("SELECT 1 FROM places_rtree LIMIT 1").fetchall()
            conn.execute("SELECT value FROM meta WHERE key = 'source_sha256'").fetchall()
        except sqlite3.Error as exc:
            self.close()
            raise PlacesError(f"{self._path} is not a places database: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise PlacesError(f"place index on {self._path} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with self._lock:
            if self._closed:
                raise PlacesError(f"place index on {self._path} is closed")
            try:
                # check_same_thread=False only so close() may close every thread's connection;
                # each connection is still used by the one thread that opened it.
                conn = sqlite3.connect(self._uri, uri=True, check_same_thread=False)
            except sqlite3.Error as exc:
                raise PlacesError(f"cannot open places database {self._path}: {exc}") from exc
            self._connections.append(conn)
        self._local.conn = conn
        return conn

    def lookup(self, lat: float, lng: float, *, max_km: float = 50.0) -> Place | None:
        """The nearest place within ``max_km`` of (lat, lng), or None.

        None for coordinates that are not a point on Earth (NaN, infinite, out of range) and for
        points with no place within ``max_km`` (open sea), so such photos get no city.
        """
        if not (isinstance(max_km, (int, float)) and max_km > 0 and math.isfinite(max_km)):
            raise ValueError(f"max_km must be a positive number of km, not {max_km!r}")
        try:
            lat, lng = float(lat), float(lng)
        except (TypeError, ValueError):
            return None
        if not (math.isfinite(lat) and math.isfinite(lng)):
            return None
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
            return None
        conn = self._connection()
        radius = min(START_RADIUS_KM, max_km)
        while True:
            best: tuple[float, tuple[str, str, str, str, float, float]] | None = None
            for box in bounding_boxes(lat, lng, radius):
                for row in conn.execute(_QUERY, box):
                    dist = haversine_km(lat, lng, row[4], row[5])
                    if best is None or dist < best[0]:
                        best = (dist, row)
            if best is not None and best[0] <= radius:
                dist, (name, admin1, country, cc, plat, plng) = best
                return Place(name, admin1, country, cc, dist, plat, plng)
            if radius >= max_km:
                return None
            radius = min(radius * 2.5, max_km)

    def search(self, query: str, *, limit: int = 10) -> list[Found]:
        """Places whose name starts with the query, best first: "paris" or "Paris, France" (words
        after a comma must start a word of the region, the country or be its code). Accents and
        case do not matter. Bounded: one range of the name index, at most SEARCH_SCAN rows read.
        No population is in the data, so an exact name comes first, among equal names one that also
        names its district or region (Paris, France before Paris, Texas), then shorter names."""
        name, _, rest = query.partition(",")
        key = name_key(name)
        wanted = name_key(rest).replace(",", " ").split()
        if not key or limit < 1:
            return []
        conn = self._connection()
        found: list[tuple[tuple[int, int, int, str], Found]] = []
        for n, admin1, admin2, country, cc, lat, lng in conn.execute(_SEARCH, (key, key + "\U0010ffff", SEARCH_SCAN)):
            if wanted:
                words = set(name_key(f"{admin1} {country}").split()) | {cc.casefold()}
                if not all(any(w.startswith(x) for w in words) for x in wanted):
                    continue
            own = name_key(n)
            seat = own in (name_key(admin1), name_key(admin2))
            found.append(((0 if own == key else 1, 0 if seat else 1, len(own), own), Found(n, admin1, country, cc, lat, lng)))
        found.sort(key=lambda item: item[0])
        return [f for _, f in found[:limit]]

    def close(self) -> None:
        """Close every thread's connection; later lookups raise PlacesError."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

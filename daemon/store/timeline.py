"""What the web app's timeline, map and search box read: month buckets, a month's photos, map
clusters and points, and completions for the search box.

The timeline follows Immich and Google Photos: one call returns every month with its count, so
the scroll height and the scrubber are right before a single photo is loaded, and a month's
photos are fetched only when it comes near the screen. Both go through the search compiler, so
a timeline of `label:beach` is the same photos a search for it finds (private and archived
photos left out unless the query asks), and no rule is written twice.

The plain library (no query) is the common case and must stay fast at a million photos: the
partial expression index `photos_month` of migration 0010 lets SQLite count months from the
index alone; map clusters read the partial index `photos_geo`.
"""

from __future__ import annotations

import math
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from daemon.search.compiler import Compiled
from daemon.store import photo_pages

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
UNDATED = "undated"
#: The default view (no query) exactly as the search compiler writes it; used to pick the index.
_PLAIN = "p.primary_file_id IS NOT NULL AND p.archived = 0 AND p.private = 0"


def month_buckets(conn: sqlite3.Connection, compiled: Compiled) -> dict[str, Any]:
    """Every month with photos, newest first, with counts; and how many photos have no date."""
    month = "substr(p.taken_at, 1, 7)"
    source = compiled.source
    if compiled.where == _PLAIN and source == "photos AS p":
        source = "photos AS p INDEXED BY photos_month"
    rows = conn.execute(f"SELECT {month} AS m, count(*) AS n FROM {source} WHERE {compiled.where}"
                        f" GROUP BY {month} ORDER BY {month} DESC", compiled.params).fetchall()
    months: list[dict[str, Any]] = []
    undated = 0
    for m, n in rows:
        if m is None or not MONTH.match(m):
            undated += int(n)  # no date, or a date too odd to place (kept, shown at the end)
        else:
            months.append({"month": m, "count": int(n)})
    return {"total": sum(x["count"] for x in months) + undated, "months": months, "undated": undated}


def month_photos(conn: sqlite3.Connection, compiled: Compiled, month: str) -> list[dict[str, Any]]:
    """The photos of one month (or the undated ones), newest first, as grid summaries."""
    params = dict(compiled.params)
    if month == UNDATED:
        cond = "(p.taken_at IS NULL OR p.taken_at NOT GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]*')"
        order = "p.added_at DESC, p.id DESC"
    else:
        year, mon = int(month[:4]), int(month[5:7])
        nxt = f"{year + (mon == 12):04d}-{1 if mon == 12 else mon + 1:02d}"
        params["_lo"], params["_hi"] = month, nxt
        cond = "p.taken_at >= :_lo AND p.taken_at < :_hi"
        order = "p.taken_at DESC, p.id DESC"
    columns = ", ".join(f"p.{c}" for c in photo_pages.SUMMARY_COLUMNS)
    return [photo_pages.summary(r) for r in conn.execute(
        f"SELECT {columns} FROM {compiled.source} WHERE {compiled.where} AND {cond} ORDER BY {order}", params)]


@dataclass(frozen=True)
class Box:
    """A map viewport in degrees. `west` > `east` crosses the antimeridian."""

    west: float
    south: float
    east: float
    north: float

    WORLD = None  # set below

    def lng_condition(self, params: dict[str, Any]) -> str:
        params["_w"], params["_e"] = self.west, self.east
        if self.west <= self.east:
            return "p.lng BETWEEN :_w AND :_e"
        return "(p.lng >= :_w OR p.lng <= :_e)"


Box.WORLD = Box(-180.0, -90.0, 180.0, 90.0)  # type: ignore[misc]


def cell_size(zoom: int) -> float:
    """Degrees of a cluster cell at a map zoom: about 60 screen pixels of a 512 px tile."""
    return 360.0 / (2 ** max(0, zoom)) / 8.0


#: From this zoom on, a viewport is small enough to cluster from the index directly; below it
#: the clusters of the whole world at that zoom are computed once and cut to the viewport.
DIRECT_ZOOM = 9


def clip(result: dict[str, Any], box: Box) -> dict[str, Any]:
    """The clusters of `result` whose centre lies in `box`."""
    def inside(c: dict[str, Any]) -> bool:
        if not box.south <= c["lat"] <= box.north:
            return False
        if box.west <= box.east:
            return box.west <= c["lng"] <= box.east
        return c["lng"] >= box.west or c["lng"] <= box.east
    kept = [c for c in result["clusters"] if inside(c)]
    return {**result, "count": sum(c["count"] for c in kept), "clusters": kept}


def map_clusters(conn: sqlite3.Connection, compiled: Compiled, box: Box, zoom: int) -> dict[str, Any]:
    """Geotagged photos in a viewport, grouped by a grid that gets finer as the map zooms in.

    A cluster of one is a photo (its id and thumb_key); a bigger one carries its count, its
    centre, the bounds of its photos (zoom there to split it) and a sample photo for a cover.
    The grid is anchored at (-90, -180), so a cluster does not jump as the map pans."""
    size = cell_size(zoom)
    params = dict(compiled.params)
    params["_s"], params["_n"], params["_size"] = box.south, box.north, size
    source = compiled.source
    where = compiled.where
    if where == _PLAIN and source == "photos AS p":
        source = "photos AS p INDEXED BY photos_geo"
    sql = (f"SELECT count(*) AS n, avg(p.lat), avg(p.lng), min(p.lat), min(p.lng), max(p.lat), max(p.lng),"
           f" max(p.uid), max(p.thumb_key)"
           f" FROM {source} WHERE {where} AND p.lat IS NOT NULL AND p.lat BETWEEN :_s AND :_n"
           f" AND {box.lng_condition(params)}"
           f" GROUP BY CAST((p.lat + 90.0) / :_size AS INTEGER), CAST((p.lng + 180.0) / :_size AS INTEGER)")
    clusters = []
    total = 0
    for n, lat, lng, s, w, nn, e, uid, thumb in conn.execute(sql, params):
        total += n
        item: dict[str, Any] = {"count": int(n), "lat": round(lat, 6), "lng": round(lng, 6),
                                "photo": uid, "thumb_key": thumb}
        if n > 1:
            # rounded outwards, so that a box made of these bounds holds every photo of the cluster
            item["bounds"] = [_down(w), _down(s), _up(e), _up(nn)]
        clusters.append(item)
    return {"zoom": zoom, "cell": size, "count": total, "clusters": clusters}


def _down(x: float) -> float:
    return math.floor(x * 1e6) / 1e6


def _up(x: float) -> float:
    return math.ceil(x * 1e6) / 1e6


def map_points(conn: sqlite3.Connection, compiled: Compiled, box: Box, limit: int) -> dict[str, Any]:
    """Geotagged photos in a viewport as compact rows `[id, lat, lng, thumb_key]`, at most
    `limit` (then `truncated` is true and the caller should ask for clusters). In no particular
    order: they are for clustering on the device, and sorting would read every row first."""
    params = dict(compiled.params)
    params["_s"], params["_n"], params["_limit"] = box.south, box.north, limit + 1
    rows = conn.execute(
        f"SELECT p.uid, p.lat, p.lng, p.thumb_key FROM {compiled.source} WHERE {compiled.where}"
        f" AND p.lat IS NOT NULL AND p.lat BETWEEN :_s AND :_n AND {box.lng_condition(params)}"
        f" LIMIT :_limit", params).fetchall()
    truncated = len(rows) > limit
    points = [[r[0], round(r[1], 6), round(r[2], 6), r[3]] for r in rows[:limit]]
    return {"count": len(points), "truncated": truncated, "points": points}


def map_photos(conn: sqlite3.Connection, compiled: Compiled, box: Box, limit: int) -> list[dict[str, Any]]:
    """The photos inside a box (a cluster's bounds), newest first, as grid summaries."""
    params = dict(compiled.params)
    params["_s"], params["_n"], params["_limit"] = box.south, box.north, limit
    ids = [r[0] for r in conn.execute(
        f"SELECT p.id FROM {compiled.source} WHERE {compiled.where} AND p.lat IS NOT NULL"
        f" AND p.lat BETWEEN :_s AND :_n AND {box.lng_condition(params)}"
        f" ORDER BY p.taken_at DESC, p.id DESC LIMIT :_limit", params)]
    return photo_pages.summaries_by_id(conn, ids)


def valid_box(west: float, south: float, east: float, north: float) -> Box | None:
    """A Box, or None when the numbers are not a viewport."""
    values = (west, south, east, north)
    if any(math.isnan(v) or math.isinf(v) for v in values):
        return None
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90):
        return None
    return Box(west, south, east, north)

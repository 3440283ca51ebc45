"""The routes the web app's timeline, map and search box need (GET only, `read`).

- `/timeline/months`: every month with its count, for the whole library in one call (the
  scroll height and the scrubber); `/timeline/months/{month}`: one month's photos.
- `/map/clusters`: geotagged photos of a viewport grouped on a grid for the zoom;
  `/map/points`: the same as compact rows while there are few; `/map/photos`: the photos in a box.
- `/search/suggest`: completions of the word being typed.

Each takes the search language in `q`, compiled by daemon.search, so a filtered timeline or map
shows exactly what a search shows; the SQL lives in daemon.store.timeline.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import OrderedDict
from typing import Annotated, Any, Awaitable, Callable, Optional, TypeVar

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200
from pydantic import BaseModel, Field

from daemon.api.access import requires
from daemon.api.errors import ApiError, bad_request, validated
from daemon.api.keys import APP_KEY
from daemon.api.photos import PhotoSummary
from daemon.auth.roles import Scope
from daemon.search import MAX_QUERY_CHARS, SearchError, within_budget
from daemon.search.compiler import Compiled, compile
from daemon.search.parser import parse
from daemon.search.suggest import suggest as complete
from daemon.store import timeline

T = TypeVar("T")
Query = Field("", max_length=MAX_QUERY_CHARS, description="the search language; empty: the whole library")
Month = Annotated[str, Field(pattern=r"^(\d{4}-(0[1-9]|1[0-2])|undated)$", description="YYYY-MM, or `undated`")]


class MonthCount(BaseModel):
    month: str
    count: int


class Months(BaseModel):
    total: int
    months: list[MonthCount] = Field(description="newest first")
    undated: int = Field(description="photos without a usable date (shown after the oldest month)")


class MonthPhotos(BaseModel):
    month: str
    photos: list[PhotoSummary] = Field(description="newest first")


class Cluster(BaseModel):
    count: int
    lat: float
    lng: float
    photo: str = Field(description="a photo of the cluster (the photo itself when count is 1)")
    thumb_key: Optional[str] = None
    bounds: Optional[list[float]] = Field(default=None, description="[west, south, east, north] of its photos")


class Clusters(BaseModel):
    zoom: int
    cell: float = Field(description="grid cell in degrees")
    count: int
    clusters: list[Cluster]


class Points(BaseModel):
    count: int
    truncated: bool = Field(description="more photos than `limit`: ask for /map/clusters instead")
    points: list[list[Any]] = Field(description="[id, lat, lng, thumb_key], newest first")


class BoxPhotos(BaseModel):
    photos: list[PhotoSummary]


class Suggestion(BaseModel):
    kind: str = Field(description="filter, label, person, place, camera or album")
    value: str
    insert: str = Field(description="the text that replaces the word being typed")
    count: Optional[int] = None
    help: Optional[str] = None


class Suggestions(BaseModel):
    suggestions: list[Suggestion]


async def _read(request: web.Request, q: str, fn: Callable[[sqlite3.Connection, Compiled], T]) -> T:
    """Compile `q` and run fn on a reader; a bad query is a 400 naming the filter at fault."""
    app = request.app[APP_KEY]
    assert app.db is not None

    def run(conn: sqlite3.Connection) -> T:
        with within_budget(conn):  # as a search: past [search] max_seconds, 400 "query too expensive"
            return fn(conn, compile(parse(q), conn=conn))

    try:
        return await app.db.read(run)
    except SearchError as exc:
        raise ApiError(400, "bad_query", exc.message, {"field": exc.key, "value": exc.value}) from None


def _box(west: float, south: float, east: float, north: float) -> timeline.Box:
    box = timeline.valid_box(west, south, east, north)
    if box is None:
        raise bad_request("the viewport must be west,east in -180..180 and south <= north in -90..90",
                          field="north")
    return box


@requires(Scope.READ)
@validated
async def months(request: web.Request, q: str = Query) -> r200[Months]:
    """Every month with photos and its count, newest first, for the whole library (or a search)
    in one call: enough to size the timeline and its scrubber before any photo is loaded.

    Tags: timeline
    """
    db = request.app[APP_KEY].db
    assert db is not None
    cache = request.app[MONTH_BUCKETS]
    generation = db.generation
    hit = cache.get(q)
    if hit is not None and hit[0] == generation:
        cache.move_to_end(q)
        return web.json_response(hit[1])
    body = await _read(request, q, timeline.month_buckets)
    cache[q] = (generation, body)  # the generation read before: a write meanwhile makes it stale
    while len(cache) > 32:
        cache.popitem(last=False)
    return web.json_response(body)


@requires(Scope.READ)
@validated
async def month(request: web.Request, month: Month, /, q: str = Query) -> r200[MonthPhotos]:
    """The photos of one month (`undated`: those without a date), newest first, with what a grid
    needs to lay them out (width, height, blurhash placeholder, thumb_key).

    Tags: timeline
    """
    photos = await _read(request, q, lambda c, compiled: timeline.month_photos(c, compiled, month))
    return web.json_response({"month": month, "photos": photos})


class WorldClusters:
    """The clusters of the whole world per (query, zoom), kept for `ttl` seconds.

    Why: below DIRECT_ZOOM a viewport spans most of the library, and grouping a million
    positions costs most of a second on a Pi-class CPU — while panning and zooming ask for the
    same few zoom levels over and over. A map at most `ttl` seconds behind the library is fine
    (indexing adds photos all the time; the timeline, not the map, shows them live). At most
    `size` entries are kept, the least recently used dropped first, and concurrent requests for
    the same entry share one computation."""

    def __init__(self, ttl: float = 30.0, size: int = 64) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[tuple[str, int], tuple[float, dict[str, Any]]] = OrderedDict()
        self._pending: dict[tuple[str, int], asyncio.Future[dict[str, Any]]] = {}

    async def get(self, key: tuple[str, int], compute: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        hit = self._entries.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            self._entries.move_to_end(key)
            return hit[1]
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            value = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else needs to
            raise
        finally:
            self._pending.pop(key, None)
        future.set_result(value)
        self._entries[key] = (time.monotonic(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value


WORLD_CLUSTERS: web.AppKey[WorldClusters] = web.AppKey("shoebox_world_clusters", WorldClusters)
#: Month buckets per query, with the database generation they were counted at: the timeline asks
#: for them on every load and after every live event, and nothing changes them but a write.
MONTH_BUCKETS: web.AppKey[OrderedDict] = web.AppKey("shoebox_month_buckets", OrderedDict)


@requires(Scope.READ)
@validated
async def map_clusters(request: web.Request, q: str = Query, zoom: int = Field(2, ge=0, le=22),
                       west: float = Field(-180.0, ge=-180, le=180), south: float = Field(-90.0, ge=-90, le=90),
                       east: float = Field(180.0, ge=-180, le=180), north: float = Field(90.0, ge=-90, le=90)
                       ) -> r200[Clusters]:
    """Geotagged photos in a viewport, grouped on a grid that gets finer with the zoom; a
    cluster of one is a single photo. Below zoom 9 the answer may be up to 30 s behind the
    library (the world's clusters per zoom are computed once and shared).

    Tags: map
    """
    box = _box(west, south, east, north)
    if zoom >= timeline.DIRECT_ZOOM:
        return web.json_response(
            await _read(request, q, lambda c, compiled: timeline.map_clusters(c, compiled, box, zoom)))
    world = await request.app[WORLD_CLUSTERS].get((q, zoom), lambda: _read(
        request, q, lambda c, compiled: timeline.map_clusters(c, compiled, timeline.Box.WORLD, zoom)))
    return web.json_response(timeline.clip(world, box))


@requires(Scope.READ)
@validated
async def map_points(request: web.Request, q: str = Query, limit: int = Field(20000, ge=1, le=100000),
                     west: float = Field(-180.0, ge=-180, le=180), south: float = Field(-90.0, ge=-90, le=90),
                     east: float = Field(180.0, ge=-180, le=180), north: float = Field(90.0, ge=-90, le=90)
                     ) -> r200[Points]:
    """Geotagged photos as compact rows `[id, lat, lng, thumb_key]` for clustering on the
    device; at most `limit` (then `truncated`, and /map/clusters is the better call).

    Tags: map
    """
    box = _box(west, south, east, north)
    return web.json_response(await _read(request, q, lambda c, compiled: timeline.map_points(c, compiled, box, limit)))


@requires(Scope.READ)
@validated
async def map_photos(request: web.Request, q: str = Query, limit: int = Field(200, ge=1, le=1000),
                     west: float = Field(-180.0, ge=-180, le=180), south: float = Field(-90.0, ge=-90, le=90),
                     east: float = Field(180.0, ge=-180, le=180), north: float = Field(90.0, ge=-90, le=90)
                     ) -> r200[BoxPhotos]:
    """The photos inside a box (a cluster's `bounds`), newest first.

    Tags: map
    """
    box = _box(west, south, east, north)
    photos = await _read(request, q, lambda c, compiled: timeline.map_photos(c, compiled, box, limit))
    return web.json_response({"photos": photos})


@requires(Scope.READ)
@validated
async def suggest(request: web.Request, prefix: str = Field("", max_length=200),
                  limit: int = Field(10, ge=1, le=50)) -> r200[Suggestions]:
    """Completions for the word being typed in the search box: filter names (`lab` → `label:`),
    and values of labels, people, albums, places and cameras (`label:be` → `label:beach`).

    Tags: search
    """
    app = request.app[APP_KEY]
    assert app.db is not None
    found = await app.db.read(lambda c: complete(c, prefix, limit))
    return web.json_response({"suggestions": found})


def setup_routes(web_app: web.Application, prefix: str) -> None:
    web_app[WORLD_CLUSTERS] = WorldClusters()
    web_app[MONTH_BUCKETS] = OrderedDict()
    r = web_app.router
    r.add_get(f"{prefix}/timeline/months", months)
    r.add_get(f"{prefix}/timeline/months/{{month}}", month)
    r.add_get(f"{prefix}/map/clusters", map_clusters)
    r.add_get(f"{prefix}/map/points", map_points)
    r.add_get(f"{prefix}/map/photos", map_photos)
    r.add_get(f"{prefix}/search/suggest", suggest)

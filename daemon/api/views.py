"""Automatic views: calendar, places, folders, moments, on this day (daemon.store.views).

Read-only and computed on request; every node carries `q`, the search query that lists its
photos through GET /api/v1/photos.
"""

from __future__ import annotations

import sqlite3
import datetime as dt
from typing import Any, Optional

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200
from pydantic import BaseModel, ConfigDict, Field

from daemon.api.access import requires
from daemon.api.errors import ApiError, not_found, validated
from daemon.api.keys import APP_KEY
from daemon.app import App
from daemon.auth.roles import Scope
from daemon.store import views as store
from daemon.store.views import MomentRule, ViewError


class Open(BaseModel):
    """Documented in README (Collections); nested nodes as described there."""

    model_config = ConfigDict(extra="allow")


class Years(Open):
    years: list[dict[str, Any]]
    undated: int


class Months(Open):
    year: int
    count: int
    months: list[dict[str, Any]]


class Places(Open):
    countries: list[dict[str, Any]]
    count: int


class Folder(Open):
    path: str
    parent: Optional[str] = None
    photos: int
    count: int
    folders: list[dict[str, Any]]
    q: Optional[str] = None


class Moments(Open):
    moments: list[dict[str, Any]]
    next_cursor: Optional[str] = None
    rule: dict[str, Any]


class OnThisDay(Open):
    date: str
    years: list[dict[str, Any]]


def _app(request: web.Request) -> App:
    return request.app[APP_KEY]


async def _read(request: web.Request, fn: Any) -> web.Response:
    app = _app(request)
    assert app.db is not None
    try:
        return web.json_response(await app.db.read(fn))
    except ViewError as exc:
        if exc.status == 404:
            raise not_found(str(exc)) from None
        raise ApiError(400, "bad_request", str(exc), {"field": exc.field} if exc.field else None) from None


@requires(Scope.READ)
@validated
async def calendar(request: web.Request) -> r200[Years]:
    """Years with photos (newest first), each with its count and a cover photo; `undated` counts
    photos without a date.

    Tags: views
    """
    return await _read(request, store.calendar_years)


@requires(Scope.READ)
@validated
async def calendar_year(request: web.Request, year: int = Field(..., ge=1, le=9998, description="a year, like 2008")
                        ) -> r200[Months]:
    """The months of a year with photos, each with its count and a cover photo (a favourite first,
    then the best rated, then the latest).

    Tags: views
    """
    return await _read(request, lambda c: store.calendar_months(c, year))


@requires(Scope.READ)
@validated
async def places(request: web.Request,
                 country: Optional[str] = Field(None, min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$",
                                                description="ISO country code: only that country")) -> r200[Places]:
    """Country → region → city, each with its photo count, largest first.

    Tags: views
    """
    return await _read(request, lambda c: store.places_tree(c, country))


@requires(Scope.READ)
@validated
async def folders(request: web.Request,
                  path: str = Field("", max_length=4096, description="a folder of the library, '' for its root")
                  ) -> r200[Folder]:
    """A folder of the library (the root by default): photos directly in it, and its subfolders
    with the photos anywhere below each. Browse by passing a subfolder's `path` back.

    Tags: views
    """
    return await _read(request, lambda c: store.folders(c, path))


@requires(Scope.READ)
@validated
async def moments(request: web.Request,
                  year: Optional[int] = Field(None, ge=1, le=9998, description="only moments of this year"),
                  cursor: Optional[str] = Field(None, max_length=200),
                  limit: int = Field(20, ge=1, le=200),
                  gap_hours: float = Field(4.0, gt=0, le=240, description="a longer pause starts a new moment"),
                  distance_km: float = Field(50.0, gt=0, le=20000, description="a farther move starts a new moment"),
                  min_photos: int = Field(3, ge=1, le=1000, description="fewer photos are not a moment")
                  ) -> r200[Moments]:
    """Moments, newest first: runs of photos taken less than `gap_hours` apart and less than
    `distance_km` from the last known position, with at least `min_photos` photos.

    Tags: views
    """
    rule = MomentRule(gap_hours=gap_hours, distance_km=distance_km, min_photos=min_photos)
    return await _read(request, lambda c: store.moments(c, rule=rule, limit=limit, cursor=cursor or None, year=year))


@requires(Scope.READ)
@validated
async def on_this_day(request: web.Request,
                      date: Optional[str] = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$",
                                                  description="the day to look back from (default: today)"),
                      per_year: int = Field(50, ge=1, le=500)) -> r200[OnThisDay]:
    """Photos taken on this month and day in earlier years, grouped by year (newest first).

    Tags: views
    """
    if date is None:
        day = dt.date.today()
    else:
        try:
            day = dt.date.fromisoformat(date)
        except ValueError:
            raise ApiError(400, "bad_request", f"no such date {date!r}", {"field": "date"}) from None

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        return store.on_this_day(conn, day, per_year=per_year)

    return await _read(request, read)


def setup_routes(web_app: web.Application, prefix: str) -> None:
    r = web_app.router
    r.add_get(f"{prefix}/calendar", calendar)
    r.add_get(f"{prefix}/calendar/months", calendar_year)
    r.add_get(f"{prefix}/places", places)
    r.add_get(f"{prefix}/folders", folders)
    r.add_get(f"{prefix}/moments", moments)
    r.add_get(f"{prefix}/onthisday", on_this_day)

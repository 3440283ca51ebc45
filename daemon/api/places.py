"""Finding a place by name in the offline GeoNames database (daemon.places), to set a photo's location.

No online geocoder: the same places.db that names a photo's place answers "Paris, France". The
lookup reads the name index in the worker pool, so the event loop never waits on disk.
"""

from __future__ import annotations

from dataclasses import asdict

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200
from pydantic import BaseModel, Field

from daemon.api.access import requires
from daemon.api.errors import ApiError, validated
from daemon.api.keys import APP_KEY
from daemon.auth.roles import Scope


class FoundPlace(BaseModel):
    name: str
    region: str = Field(description="the first-level region (state, province); may be empty")
    country: str
    country_code: str
    lat: float
    lng: float


class PlaceResults(BaseModel):
    places: list[FoundPlace]


@requires(Scope.READ)
@validated
async def search_places(request: web.Request,
                        q: str = Field(..., min_length=1, max_length=200,
                                       description="a place name or its start; words after a comma narrow "
                                                   "by region or country: 'paris, fr'"),
                        limit: int = Field(10, ge=1, le=50)) -> r200[PlaceResults]:
    """Places (towns of 1,000 people or more) whose name starts with `q`, an exact name first.
    Accents and case do not matter. 503 while the offline places database is unavailable.

    Tags: places
    """
    app = request.app[APP_KEY]
    if app.places is None or app.pool is None:
        raise ApiError(503, "places_unavailable", "the offline places database is not available (see the log)")
    found = await app.pool.run(app.places.search, q, limit=limit)
    return web.json_response({"places": [asdict(f) for f in found]})


def setup_routes(web_app: web.Application, prefix: str) -> None:
    web_app.router.add_get(f"{prefix}/places/search", search_places)

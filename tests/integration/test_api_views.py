"""Automatic views through the API over a real indexed library: calendar, places, folders (with a
folder whose name is not valid UTF-8), moments cut by time and by distance, and "on this day".

The library: camera/ (Canon 2008-05-30, Nikon 2008-03-15, Pentax 2008-05-04, Sony 2007-06-15),
gps/ (four photos taken in Arezzo, Tuscany, on 2008-10-22 between 16:28 and 16:43) and
trips/caf\\xe9/ (a Fujifilm photo of 2006-08-17; \\xe9 is Latin-1, so the name is not UTF-8).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from daemon.auth.roles import Role
from tests.conftest import copy_sample
from tests.integration.api_support import SAMPLE_PHOTOS, add_user, api, auth, clone, login, photo_ids, settings
from tests.integration.support import index, make_config

CAFE = os.fsdecode(b"trips/caf\xe9")
GPS = ("DSCN0012.jpg", "DSCN0021.jpg", "DSCN0025.jpg")


@pytest.fixture(scope="module")
def indexed(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("views")
    library, data = root / "library", root / "data"
    for rel in SAMPLE_PHOTOS:
        copy_sample(samples, rel, library / ("gps" if "/gps/" in rel else "camera"))
    for name in GPS:
        copy_sample(samples, f"exif-samples/jpg/gps/{name}", library / "gps")
    copy_sample(samples, "exif-samples/jpg/Fujifilm_FinePix_E500.jpg", library / CAFE)
    asyncio.run(index(make_config(library, data, **settings())))
    return library, data


@pytest.fixture
def copy(indexed: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    return clone(indexed, tmp_path)


async def test_calendar_years_and_months_with_counts_and_covers(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "vera", Role.VIEWER)
        await add_user(app, "ann", Role.USER)
        h, user = auth(await login(client, "vera")), auth(await login(client, "ann"))
        ids = await photo_ids(app)
        r = await client.get("/api/v1/calendar", headers=h)
        assert r.status == 200
        cal = await r.json()
        assert [(y["year"], y["count"]) for y in cal["years"]] == [(2008, 7), (2007, 1), (2006, 1)]
        assert cal["undated"] == 0
        assert cal["years"][2]["cover"]["id"] == ids["Fujifilm_FinePix_E500.jpg"]
        months = await (await client.get("/api/v1/calendar/months", params={"year": "2008"}, headers=h)).json()
        assert [(m["month"], m["count"]) for m in months["months"]] == [(3, 1), (5, 2), (10, 4)]
        may = months["months"][1]
        assert may["cover"]["id"] == ids["Canon_40D.jpg"]  # the latest, while none is a favourite
        # the query of a month lists exactly its photos
        page = await (await client.get("/api/v1/photos", params={"q": may["q"]}, headers=h)).json()
        assert {p["id"] for p in page["photos"]} == {ids["Canon_40D.jpg"], ids["Pentax_K10D.jpg"]}

        # a favourite becomes the cover; an archived photo leaves the counts
        await client.patch(f"/api/v1/photos/{ids['Pentax_K10D.jpg']}", json={"favorite": True}, headers=user)
        await client.post(f"/api/v1/photos/{ids['Nikon_D70.jpg']}/archive", headers=user)
        months = await (await client.get("/api/v1/calendar/months", params={"year": "2008"}, headers=h)).json()
        assert [(m["month"], m["count"]) for m in months["months"]] == [(5, 2), (10, 4)]
        assert months["months"][0]["cover"]["id"] == ids["Pentax_K10D.jpg"]
        assert (await client.get("/api/v1/calendar/months", params={"year": "1999"}, headers=h)).status == 404
        assert (await client.get("/api/v1/calendar/months", params={"year": "twenty"}, headers=h)).status == 422
        assert (await client.get("/api/v1/calendar")).status == 401


async def test_places_are_a_country_region_city_tree(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "vera", Role.VIEWER)
        h = auth(await login(client, "vera"))
        tree = await (await client.get("/api/v1/places", headers=h)).json()
        assert tree["count"] == 4
        [italy] = tree["countries"]
        assert (italy["country_code"], italy["country"], italy["count"]) == ("IT", "Italy", 4)
        [tuscany] = italy["regions"]
        assert tuscany["region"] == "Tuscany" and tuscany["count"] == 4
        assert [(c["city"], c["count"]) for c in tuscany["cities"]] == [("Arezzo", 4)]
        page = await (await client.get("/api/v1/photos", params={"q": tuscany["cities"][0]["q"]}, headers=h)).json()
        assert len(page["photos"]) == 4
        assert (await (await client.get("/api/v1/places", params={"country": "it"}, headers=h)).json())["count"] == 4
        assert (await client.get("/api/v1/places", params={"country": "fr"}, headers=h)).status == 404
        assert (await client.get("/api/v1/places", params={"country": "france"}, headers=h)).status == 422


async def test_folders_browse_by_path_including_names_that_are_not_utf8(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "vera", Role.VIEWER)
        h = auth(await login(client, "vera"))
        ids = await photo_ids(app)
        root = await (await client.get("/api/v1/folders", headers=h)).json()
        assert root["path"] == "" and root["parent"] is None and root["photos"] == 0 and root["count"] == 9
        assert [(f["name"], f["count"]) for f in root["folders"]] == [("camera", 4), ("gps", 4), ("trips", 1)]
        gps = await (await client.get("/api/v1/folders", params={"path": "gps"}, headers=h)).json()
        assert gps["photos"] == 4 and gps["folders"] == [] and gps["parent"] == ""
        page = await (await client.get("/api/v1/photos", params={"q": gps["q"]}, headers=h)).json()
        assert len(page["photos"]) == 4
        # the raw bytes b"caf\xe9" are shown readably, and that text leads back to the folder
        trips = await (await client.get("/api/v1/folders", params={"path": "/trips/"}, headers=h)).json()
        [cafe] = trips["folders"]
        assert cafe["name"] == "caf\\xe9" and cafe["path"] == "trips/caf\\xe9" and cafe["count"] == 1
        assert cafe["q"] is None and trips["q"] == "path:trips"  # the search language reads folders as UTF-8
        inside = await (await client.get("/api/v1/folders", params={"path": cafe["path"]}, headers=h)).json()
        assert inside["photos"] == 1 and inside["parent"] == "trips"
        # a folder is only ever a filter: traversal is refused, an unknown folder is not found
        for bad in ("../etc", "gps/../..", "./gps", "gps\x00"):
            r = await client.get("/api/v1/folders", params={"path": bad}, headers=h)
            assert r.status == 400 and (await r.json())["details"]["field"] == "path", bad
        for missing in ("/etc", "nosuch", "gp", "gps/sub"):
            r = await client.get("/api/v1/folders", params={"path": missing}, headers=h)
            assert r.status == 404, missing


async def test_moments_are_cut_by_time_and_by_distance(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.USER)
        h = auth(await login(client, "ann"))
        ids = await photo_ids(app)
        arezzo = [ids[n] for n in ("DSCN0010.jpg", *GPS)]
        body = await (await client.get("/api/v1/moments", headers=h)).json()
        assert body["rule"] == {"gap_hours": 4.0, "distance_km": 50.0, "min_photos": 3}
        [moment] = body["moments"]
        assert moment["count"] == 4 and set(moment["photos"]) == set(arezzo) and body["next_cursor"] is None
        assert moment["start"] == "2008-10-22T16:28:39" and moment["end"] == "2008-10-22T16:43:21"
        assert moment["place"] == {"city": "Arezzo", "region": "Tuscany", "country": "Italy"}
        assert moment["lat"] == pytest.approx(43.467, abs=0.01) and moment["cover"]["id"] in arezzo

        # every photo is a moment of its own when one photo is enough; pages of 2 give the same list
        whole = await (await client.get("/api/v1/moments", params={"min_photos": "1"}, headers=h)).json()
        assert [m["count"] for m in whole["moments"]] == [4, 1, 1, 1, 1, 1]
        starts = [m["start"] for m in whole["moments"]]
        assert starts == sorted(starts, reverse=True)
        paged, cursor = [], None
        while True:
            params = {"min_photos": "1", "limit": "2", **({"cursor": cursor} if cursor else {})}
            page = await (await client.get("/api/v1/moments", params=params, headers=h)).json()
            paged += page["moments"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert [m["photos"] for m in paged] == [m["photos"] for m in whole["moments"]]

        # the last photo of the walk in Arezzo is moved (by hand) to Paris: 800 km is a new moment
        r = await client.patch(f"/api/v1/photos/{ids['DSCN0025.jpg']}", json={"lat": 48.8566, "lng": 2.3522},
                               headers=h)
        assert r.status == 200
        [moment] = (await (await client.get("/api/v1/moments", headers=h)).json())["moments"]
        assert moment["count"] == 3 and ids["DSCN0025.jpg"] not in moment["photos"]
        wide = await (await client.get("/api/v1/moments", params={"distance_km": "2000"}, headers=h)).json()
        assert [m["count"] for m in wide["moments"]] == [4]
        # a shorter allowed pause cuts the 16:29 -> 16:38 gap
        short = await (await client.get("/api/v1/moments", params={"gap_hours": "0.1", "min_photos": "2",
                                                                   "distance_km": "2000"}, headers=h)).json()
        assert [m["count"] for m in short["moments"]] == [2, 2]
        assert (await (await client.get("/api/v1/moments", params={"year": "2007"}, headers=h)).json())["moments"] == []
        r = await client.get("/api/v1/moments", params={"cursor": "garbage"}, headers=h)
        assert r.status == 400 and (await r.json())["details"]["field"] == "cursor"
        assert (await client.get("/api/v1/moments", params={"gap_hours": "-1"}, headers=h)).status == 422


async def test_on_this_day_in_past_years(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.USER)
        h = auth(await login(client, "ann"))
        ids = await photo_ids(app)
        day = await (await client.get("/api/v1/onthisday", params={"date": "2024-10-22"}, headers=h)).json()
        assert day["date"] == "2024-10-22"
        assert [(y["year"], y["years_ago"], y["count"]) for y in day["years"]] == [(2008, 16, 4)]
        assert {p["id"] for p in day["years"][0]["photos"]} == {ids[n] for n in ("DSCN0010.jpg", *GPS)}
        # the same day of the same year is not "past"; an earlier year's photo on that day is
        await client.patch(f"/api/v1/photos/{ids['Sony_HDR-HC3.jpg']}", json={"taken_at": "2007-10-22T08:00:00"},
                           headers=h)
        day = await (await client.get("/api/v1/onthisday", params={"date": "2008-10-22"}, headers=h)).json()
        assert [(y["year"], y["count"]) for y in day["years"]] == [(2007, 1)]
        day = await (await client.get("/api/v1/onthisday", params={"date": "2024-10-22", "per_year": "2"},
                                      headers=h)).json()
        assert [(y["year"], y["count"], len(y["photos"])) for y in day["years"]] == [(2008, 4, 2), (2007, 1, 1)]
        assert (await (await client.get("/api/v1/onthisday", params={"date": "2024-10-23"}, headers=h)).json())["years"] == []
        r = await client.get("/api/v1/onthisday", params={"date": "2023-02-30"}, headers=h)
        assert r.status == 400 and (await r.json())["details"]["field"] == "date"
        assert (await client.get("/api/v1/onthisday", params={"date": "yesterday"}, headers=h)).status == 422
        assert (await client.get("/api/v1/onthisday", headers=h)).status == 200  # today

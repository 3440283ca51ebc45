"""Photos through the API as the web app uses them: pages, one photo, edits that survive a
re-index, batch edits, archive, originals with Range/ETag, thumbnails, deleting originals."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from pathlib import Path

import pytest
from PIL import Image

from daemon.auth.roles import Role
from daemon.library.thumbnails import ThumbSettings, thumb_path
from daemon.timeutil import utcnow
from tests.integration.api_support import add_user, api, auth, login, photo_ids, settings
from tests.integration.support import index, make_config
from tests.waiting import wait_until_async

SIDECAR = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
 <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
   xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" xmp:Rating="4" photoshop:DateCreated="2011-02-03T04:05:06">
  <dc:title><rdf:Alt><rdf:li xml:lang="x-default">Beach</rdf:li></rdf:Alt></dc:title>
  <dc:description><rdf:Alt><rdf:li xml:lang="x-default">Written by Lightroom</rdf:li></rdf:Alt></dc:description>
  <dc:subject><rdf:Bag><rdf:li>sea</rdf:li></rdf:Bag></dc:subject>
 </rdf:Description></rdf:RDF></x:xmpmeta>"""


async def test_pages_with_a_cursor_list_every_photo_once_newest_first(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.VIEWER)
        h = auth(await login(client, "ann"))
        seen: list[dict] = []
        cursor = None
        pages = 0
        while True:
            params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
            r = await client.get("/api/v1/photos", params=params, headers=h)
            assert r.status == 200
            page = await r.json()
            assert len(page["photos"]) <= 2
            seen += page["photos"]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == 3 and len(seen) == 5
        assert len({p["id"] for p in seen}) == 5
        dates = [p["taken_at"] for p in seen if p["taken_at"]]
        assert dates == sorted(dates, reverse=True)
        first = seen[0]
        assert first["thumb_key"] and first["width"] and first["height"] and first["placeholder"]
        # the search language works through the same route
        r = await client.get("/api/v1/photos", params={"q": "country:it", "facets": "year"}, headers=h)
        body = await r.json()
        assert [p["id"] for p in body["photos"]] == [(await photo_ids(app))["DSCN0010.jpg"]]
        assert body["facets"]["year"][0]["count"] == 1


async def test_one_photo_has_its_metadata_files_place_labels_faces_and_albums(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.VIEWER)
        h = auth(await login(client, "ann"))
        uid = (await photo_ids(app))["DSCN0010.jpg"]
        r = await client.get(f"/api/v1/photos/{uid}", headers=h)
        assert r.status == 200
        p = await r.json()
        assert p["id"] == uid and p["make"] == "NIKON" and p["taken_at"].startswith("2008-10-22")
        assert p["place"]["country_code"] == "IT"
        assert p["lat"] == pytest.approx(43.467, abs=0.01)
        assert p["files"][0]["path"] == "gps/DSCN0010.jpg" and p["files"][0]["index"] == 0
        assert p["files"][0]["role"] == "primary" and p["files"][0]["mime"] == "image/jpeg"
        assert p["labels"] == [] and p["faces"] == [] and p["albums"] == []
        assert (await client.get("/api/v1/photos/nosuchphoto", headers=h)).status == 404


async def test_edits_are_kept_as_manual_and_survive_a_reindex_with_a_new_sidecar(copy: tuple[Path, Path]) -> None:
    library, data = copy
    config = make_config(library, data, **settings())
    async with api(config) as (app, client):
        await add_user(app, "ann", Role.USER)
        h = auth(await login(client, "ann"))
        uid = (await photo_ids(app))["Canon_40D.jpg"]
        edit = {"title": "Harbour at dawn", "rating": 2, "keywords": ["boat", " Boat ", "quay"],
                "taken_at": "2001-02-03T04:05:06", "taken_offset": 60, "lat": 48.8566, "lng": 2.3522}
        r = await client.patch(f"/api/v1/photos/{uid}", json=edit, headers=h)
        assert r.status == 200, await r.text()
        p = await r.json()
        assert p["title"] == "Harbour at dawn" and p["rating"] == 2 and p["keywords"] == ["boat", "quay"]
        assert p["taken_at"] == "2001-02-03T04:05:06" and p["taken_at_utc"] == "2001-02-03T03:05:06Z"
        assert p["place"]["city"] == "Paris" and p["place"]["country_code"] == "FR"  # looked up again
        for field in ("title", "rating", "keywords", "taken_at", "lat", "lng", "place"):
            assert p["sources"][field] == "manual"
        indexed_before = p["indexed_at"]

    # Lightroom writes a sidecar with another title, rating and date; the file itself is touched
    photo = library / "camera" / "Canon_40D.jpg"
    (library / "camera" / "Canon_40D.xmp").write_text(SIDECAR, encoding="utf-8")
    st = photo.stat()
    os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    # indexed_at has second precision: a re-index shows only once the clock has left that second
    # (the shared library was often indexed long before, and then this waits not at all)
    await wait_until_async(lambda: utcnow() != indexed_before, timeout=3, what="the clock to leave indexed_at's second")
    await index(config)

    async with api(config) as (app, client):
        await add_user(app, "bob", Role.VIEWER)
        h = auth(await login(client, "bob"))
        p = await (await client.get(f"/api/v1/photos/{uid}", headers=h)).json()
        assert p["indexed_at"] != indexed_before, "the photo was not indexed again"
        assert any(f["path"] == "camera/Canon_40D.xmp" for f in p["files"]), "the sidecar was not read"
        assert p["description"] == "Written by Lightroom"  # not edited: the sidecar's value arrives
        assert p["title"] == "Harbour at dawn" and p["rating"] == 2 and p["keywords"] == ["boat", "quay"]
        assert p["taken_at"] == "2001-02-03T04:05:06" and p["taken_offset"] == 60
        assert (p["lat"], p["lng"]) == (48.8566, 2.3522) and p["place"]["city"] == "Paris"


async def test_batch_edit_archive_and_restore(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.USER)
        h = auth(await login(client, "ann"))
        ids = await photo_ids(app)
        chosen = [ids["Canon_40D.jpg"], ids["Nikon_D70.jpg"]]
        r = await client.post("/api/v1/photos/batch", json={"ids": chosen + ["gone"], "changes": {"favorite": True}},
                              headers=h)
        assert r.status == 200 and await r.json() == {"updated": 2, "missing": ["gone"]}
        favs = await (await client.get("/api/v1/photos", params={"q": "favorite:yes"}, headers=h)).json()
        assert sorted(p["id"] for p in favs["photos"]) == sorted(chosen)

        r = await client.post(f"/api/v1/photos/{chosen[0]}/archive", headers=h)
        assert r.status == 200 and (await r.json())["archived"] is True
        listed = await (await client.get("/api/v1/photos", headers=h)).json()
        assert chosen[0] not in {p["id"] for p in listed["photos"]} and len(listed["photos"]) == 4
        archived = await (await client.get("/api/v1/photos", params={"q": "archived:yes"}, headers=h)).json()
        assert [p["id"] for p in archived["photos"]] == [chosen[0]]
        assert (await client.post(f"/api/v1/photos/{chosen[0]}/restore", headers=h)).status == 200
        listed = await (await client.get("/api/v1/photos", headers=h)).json()
        assert len(listed["photos"]) == 5
        # clearing a location removes the place too
        r = await client.patch(f"/api/v1/photos/{ids['DSCN0010.jpg']}", json={"lat": None, "lng": None}, headers=h)
        p = await r.json()
        assert p["lat"] is None and p["place"] is None and p["sources"]["lat"] == "manual"


async def test_originals_support_range_and_etag(copy: tuple[Path, Path]) -> None:
    library = copy[0]
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.VIEWER)
        h = auth(await login(client, "ann"))
        uid = (await photo_ids(app))["Nikon_D70.jpg"]
        original = (library / "camera" / "Nikon_D70.jpg").read_bytes()
        r = await client.get(f"/api/v1/photos/{uid}/original", headers=h)
        assert r.status == 200 and await r.read() == original
        assert r.headers["Content-Type"] == "image/jpeg" and "Nikon_D70.jpg" in r.headers["Content-Disposition"]
        etag = r.headers["ETag"]
        r = await client.get(f"/api/v1/photos/{uid}/original", headers={**h, "Range": "bytes=100-199"})
        assert r.status == 206 and await r.read() == original[100:200]
        assert r.headers["Content-Range"] == f"bytes 100-199/{len(original)}"
        r = await client.get(f"/api/v1/photos/{uid}/original", headers={**h, "If-None-Match": etag})
        assert r.status == 304
        r = await client.get(f"/api/v1/photos/{uid}/files/0", params={"download": "true"}, headers=h)
        assert r.status == 200 and r.headers["Content-Disposition"].startswith("attachment")
        assert hashlib.sha1(await r.read()).hexdigest() == hashlib.sha1(original).hexdigest()
        # a file that went away answers 404 offline, not 500
        (library / "camera" / "Nikon_D70.jpg").unlink()
        r = await client.get(f"/api/v1/photos/{uid}/original", headers=h)
        assert r.status == 404 and (await r.json())["error"] == "offline"


async def test_thumbnails_are_immutable_cached_and_made_on_demand_once(copy: tuple[Path, Path]) -> None:
    data = copy[1]
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.VIEWER)
        tokens = await login(client, "ann")
        key = await app.db.scalar("SELECT thumb_key FROM photos WHERE uid = ?", ((await photo_ids(app))["Canon_40D.jpg"],))
        r = await client.get(f"/api/v1/t/{key}/tile_224", params={"t": tokens["thumb_token"]})
        assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg"
        assert r.headers["Cache-Control"] == "private, max-age=31536000, immutable"
        body = await r.read()
        assert body == thumb_path(data / "thumbs", key, "tile_224", ThumbSettings()).read_bytes()
        r = await client.get(f"/api/v1/t/{key}/tile_224", params={"t": tokens["thumb_token"]},
                             headers={"If-None-Match": r.headers["ETag"]})
        assert r.status == 304
        # the thumbnail token stays the same after a refresh: URLs (and the browser cache) stay valid
        again = await (await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).json()
        assert again["thumb_token"] == tokens["thumb_token"]

        # a big-screen size is made when first asked for; six requests at once make it once
        big = thumb_path(data / "thumbs", key, "fit_2560", ThumbSettings())
        assert not big.exists()
        answers = await asyncio.gather(*[client.get(f"/api/v1/t/{key}/fit_2560", params={"t": tokens["thumb_token"]})
                                         for _ in range(6)])
        assert [a.status for a in answers] == [200] * 6
        assert big.is_file()
        leftovers = [p for p in big.parent.iterdir() if ".tmp" in p.name]
        assert not leftovers
        # a lost index size is made again
        small = thumb_path(data / "thumbs", key, "fit_720", ThumbSettings())
        small.unlink()
        r = await client.get(f"/api/v1/t/{key}/fit_720", headers=auth(tokens))
        assert r.status == 200 and small.is_file()
        # the grid's size is made from fit_720 the first time it is asked for, even with the
        # original gone (a library indexed before that size existed needs no re-index)
        grid = thumb_path(data / "thumbs", key, "fit_480", ThumbSettings())
        assert not grid.exists()
        original = copy[0] / "camera" / "Canon_40D.jpg"
        original.rename(original.with_suffix(".away"))
        try:
            r = await client.get(f"/api/v1/t/{key}/fit_480", params={"t": tokens["thumb_token"]})
            assert r.status == 200 and grid.is_file()
        finally:
            original.with_suffix(".away").rename(original)
        with Image.open(io.BytesIO(await r.read())) as im, Image.open(small) as larger:
            assert max(im.size) == min(480, max(larger.size))  # never larger than the photo
            assert abs(im.width / im.height - larger.width / larger.height) < 0.02
        r = await client.get(f"/api/v1/t/{'0' * 40}/tile_224", headers=auth(tokens))
        assert r.status == 404
        r = await client.get(f"/api/v1/t/{key}/tile_9999", headers=auth(tokens))
        assert r.status == 422 and "path.size" in (await r.json())["message"]


async def test_only_an_admin_asking_explicitly_deletes_originals(copy: tuple[Path, Path]) -> None:
    library = copy[0]
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        h = auth(await login(client, "ann"))
        uid = (await photo_ids(app))["Pentax_K10D.jpg"]
        photo = library / "camera" / "Pentax_K10D.jpg"
        r = await client.delete(f"/api/v1/photos/{uid}", headers=h)
        assert r.status == 400 and "delete_files=true" in (await r.json())["message"]
        assert photo.is_file()
        r = await client.delete(f"/api/v1/photos/{uid}", params={"delete_files": "true"}, headers=h)
        assert r.status == 200 and await r.json() == {"deleted_files": ["camera/Pentax_K10D.jpg"]}
        assert not photo.exists()
        assert (await client.get(f"/api/v1/photos/{uid}", headers=h)).status == 404
        assert await app.db.scalar("SELECT count(*) FROM files WHERE path_text = 'camera/Pentax_K10D.jpg'") == 0
        # a file that cannot be deleted (here: something else now stands at its path): nothing is
        # forgotten, and the answer says which file and why
        uid2 = (await photo_ids(app))["Sony_HDR-HC3.jpg"]
        blocker = library / "camera" / "Sony_HDR-HC3.jpg"
        blocker.unlink()
        blocker.mkdir()
        (blocker / "keep").write_text("x")
        r = await client.delete(f"/api/v1/photos/{uid2}", params={"delete_files": "true"}, headers=h)
        assert r.status == 409
        failed = (await r.json())["details"]["failed"]
        assert failed[0]["path"] == "camera/Sony_HDR-HC3.jpg" and failed[0]["error"]
        assert (await client.get(f"/api/v1/photos/{uid2}", headers=h)).status == 200


async def test_a_location_removed_by_hand_stays_removed_after_a_reindex(copy: tuple[Path, Path]) -> None:
    library, data = copy
    config = make_config(library, data, **settings())
    async with api(config) as (app, client):
        await add_user(app, "ann", Role.USER)
        h = auth(await login(client, "ann"))
        uid = (await photo_ids(app))["DSCN0010.jpg"]
        before = await (await client.get(f"/api/v1/photos/{uid}", headers=h)).json()
        assert before["place"]["country_code"] == "IT"
        r = await client.patch(f"/api/v1/photos/{uid}", json={"lat": None, "lng": None}, headers=h)
        assert r.status == 200, await r.text()
        assert (await r.json())["place"] is None
    photo = library / "gps" / "DSCN0010.jpg"
    st = photo.stat()
    os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # the file changes: re-indexed
    await index(config)
    async with api(config) as (app, client):
        await add_user(app, "bob", Role.VIEWER)
        h = auth(await login(client, "bob"))
        p = await (await client.get(f"/api/v1/photos/{uid}", headers=h)).json()
        assert p["lat"] is None and p["lng"] is None and p["place"] is None
        assert p["sources"]["lat"] == "manual"

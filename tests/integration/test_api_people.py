"""People, faces and labels through the API, on a library tagged by the real models: the sample
portraits (Obama twice, Biden, Grace Hopper) and a landscape. Names, merges, splits, rejections
and hidden things as a user makes them, found by search at once; face crops served safely; labels
renamed, merged, hidden, added and removed by hand, and all of it kept through a real re-tag."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from daemon.auth.roles import Role
from daemon.search import verify_search_index
from tests.conftest import copy_sample
from tests.integration.api_support import add_user, api, auth, clone, events_of, login, photo_ids
from tests.integration.support import index, make_config, shoebox

FACES = ("obama.jpg", "obama2.jpg", "biden.jpg", "grace_hopper.jpg")
ROCKS = "immich-test-assets/albums/nature/el_torcal_rocks.jpg"
FLOWER = "immich-test-assets/albums/nature/cyclamen_persicum.jpg"


@pytest.fixture(scope="module")
def tagged(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tagged")
    library, data = root / "library", root / "data"
    for name in FACES:
        copy_sample(samples, f"faces/{name}", library / "people")
    copy_sample(samples, ROCKS, library / "nature")
    copy_sample(samples, FLOWER, library / "nature")
    asyncio.run(index(make_config(library, data)))  # tagging on: labels, faces, clusters
    return library, data


@pytest.fixture
def copy(tagged: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    return clone(tagged, tmp_path)


async def found(client: Any, h: dict[str, str], q: str) -> set[str]:
    r = await client.get("/api/v1/photos", params={"q": q, "limit": "100"}, headers=h)
    assert r.status == 200, await r.text()
    return {p["id"] for p in (await r.json())["photos"]}


async def face_of(client: Any, h: dict[str, str], photo_uid: str) -> dict[str, Any]:
    detail = await (await client.get(f"/api/v1/photos/{photo_uid}", headers=h)).json()
    [face] = detail["faces"]
    return face


async def test_people_named_renamed_merged_split_and_found_by_search(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy)) as (app, client):
        await add_user(app, "ann", Role.USER)
        tokens = await login(client, "ann")
        h = auth(tokens)
        ids = await photo_ids(app)
        obama, obama2, biden, grace = (ids[n] for n in FACES)

        # unnamed clusters, largest first: both Obama photos grouped together
        clusters = await (await client.get("/api/v1/clusters", headers=h)).json()
        assert [c["faces"] for c in clusters] == [2, 1, 1]
        obama_cluster = clusters[0]["id"]
        faces = await (await client.get(f"/api/v1/clusters/{obama_cluster}/faces", headers=h)).json()
        assert {f["photo"] for f in faces["faces"]} == {obama, obama2}
        box = faces["faces"][0]["box"]
        assert 0 <= box["x"] < 1 and 0 < box["w"] <= 1 and faces["faces"][0]["crop_url"]

        # name it: a person is made, its faces confirmed, search finds them by name
        r = await client.post(f"/api/v1/clusters/{obama_cluster}/name", json={"name": " Subject   Alpha "}, headers=h)
        assert r.status == 201
        barack = (await r.json())["person"]
        people = await (await client.get("/api/v1/people", headers=h)).json()
        assert [(p["name"], p["faces"], p["photos"]) for p in people] == [("Subject Alpha", 2, 2)]
        assert people[0]["q"] == 'person:"Subject Alpha"'
        assert await found(client, h, people[0]["q"]) == {obama, obama2}
        # the cover face crop is an image an <img> tag can load with the thumbnail token only
        r = await client.get(people[0]["cover_url"], params={"t": tokens["thumb_token"]})
        assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg"
        assert (await r.read())[:2] == b"\xff\xd8"
        assert (await client.get(people[0]["cover_url"])).status == 401

        # rename: search follows (free text and person:)
        r = await client.patch(f"/api/v1/people/{barack}", json={"name": "Quentin Zephyr"}, headers=h)
        assert r.status == 200 and (await r.json())["name"] == "Quentin Zephyr"
        assert await found(client, h, 'person:"Quentin Zephyr"') == {obama, obama2}
        assert await found(client, h, "Zephyr") == {obama, obama2}
        assert await found(client, h, "Alpha") == set()

        # name Biden's cluster, then merge that person into Obama's (a user's choice): 3 faces.
        # (The photos' captions name the real people, hence made-up names in this test.)
        biden_cluster = (await face_of(client, h, biden))["cluster"]
        assert biden_cluster in {c["id"] for c in clusters[1:]}
        r = await client.post(f"/api/v1/clusters/{biden_cluster}/name", json={"name": "Kestrel"}, headers=h)
        joe = (await r.json())["person"]
        assert await found(client, h, "person:Kestrel") == {biden}
        r = await client.post(f"/api/v1/people/{joe}/merge", json={"into": barack}, headers=h)
        assert r.status == 200 and (await r.json())["faces"] == 3
        assert (await client.get(f"/api/v1/people/{joe}", headers=h)).status == 404
        assert await found(client, h, 'person:"Quentin Zephyr"') == {obama, obama2, biden}
        assert await found(client, h, "Kestrel") == set()

        # "that is not him": rejected, the face leaves the person for good
        biden_face = (await face_of(client, h, biden))["id"]
        assert (await client.post(f"/api/v1/faces/{biden_face}/reject", headers=h)).status == 200
        person = await (await client.get(f"/api/v1/people/{barack}", headers=h)).json()
        assert person["faces"] == 2
        assert (await face_of(client, h, biden))["person"] is None
        # assigned by hand after all, then hidden: counts and search leave hidden faces out
        r = await client.post(f"/api/v1/faces/{biden_face}/assign", json={"person": barack}, headers=h)
        assert r.status == 200
        assert (await face_of(client, h, biden))["person"]["source"] == "manual"
        assert (await client.patch(f"/api/v1/faces/{biden_face}", json={"hidden": True}, headers=h)).status == 200
        shown = await (await client.get(f"/api/v1/people/{barack}/faces", headers=h)).json()
        everything = await (await client.get(f"/api/v1/people/{barack}/faces", params={"hidden": "true"},
                                             headers=h)).json()
        assert {f["photo"] for f in shown["faces"]} == {obama, obama2}
        assert {f["photo"] for f in everything["faces"]} == {obama, obama2, biden}
        assert await found(client, h, 'person:"Quentin Zephyr"') == {obama, obama2}
        page = await (await client.get(f"/api/v1/people/{barack}/faces", params={"limit": "1"}, headers=h)).json()
        rest = await (await client.get(f"/api/v1/people/{barack}/faces", params={"cursor": page["next_cursor"]},
                                       headers=h)).json()
        assert [f["id"] for f in page["faces"] + rest["faces"]] == [f["id"] for f in shown["faces"]]

        # split obama2 off the cluster: it leaves the person; merged back, it is theirs again
        obama2_face = (await face_of(client, h, obama2))["id"]
        r = await client.post(f"/api/v1/clusters/{obama_cluster}/split", json={"faces": [obama2_face]}, headers=h)
        assert r.status == 201
        new_cluster = (await r.json())["cluster"]
        assert await found(client, h, 'person:"Quentin Zephyr"') == {obama}
        assert new_cluster in {c["id"] for c in await (await client.get("/api/v1/clusters", headers=h)).json()}
        r = await client.post(f"/api/v1/clusters/{new_cluster}/merge", json={"into": obama_cluster}, headers=h)
        assert r.status == 200
        assert await found(client, h, 'person:"Quentin Zephyr"') == {obama, obama2}

        # hide a cluster (a stranger) and a person: gone from the lists unless asked for
        grace_cluster = (await face_of(client, h, grace))["cluster"]
        assert (await client.patch(f"/api/v1/clusters/{grace_cluster}", json={"hidden": True}, headers=h)).status == 200
        assert grace_cluster not in {c["id"] for c in await (await client.get("/api/v1/clusters", headers=h)).json()}
        hidden = await (await client.get("/api/v1/clusters", params={"hidden": "true"}, headers=h)).json()
        assert grace_cluster in {c["id"] for c in hidden}
        assert (await client.patch(f"/api/v1/people/{barack}", json={"hidden": True}, headers=h)).status == 200
        assert await (await client.get("/api/v1/people", headers=h)).json() == []
        assert [p["id"] for p in await (await client.get("/api/v1/people", params={"hidden": "true"},
                                                        headers=h)).json()] == [barack]
        assert app.db is not None
        assert await app.db.write(verify_search_index)


async def test_people_refusals_and_face_crops_stay_inside_thumbs(copy: tuple[Path, Path]) -> None:
    async with api(make_config(*copy)) as (app, client):
        await add_user(app, "ann", Role.USER)
        await add_user(app, "vera", Role.VIEWER)
        user, viewer = auth(await login(client, "ann")), auth(await login(client, "vera"))
        ids = await photo_ids(app)
        clusters = await (await client.get("/api/v1/clusters", headers=viewer)).json()
        c1, c2 = clusters[0]["id"], clusters[1]["id"]
        face = (await face_of(client, viewer, ids["grace_hopper.jpg"]))["id"]
        person = (await (await client.post(f"/api/v1/clusters/{c2}/name", json={"name": "Someone"},
                                           headers=user)).json())["person"]
        # a viewer reads everything and changes nothing
        for path in ("/api/v1/people", "/api/v1/clusters", f"/api/v1/people/{person}",
                     f"/api/v1/people/{person}/faces", f"/api/v1/clusters/{c1}/faces"):
            assert (await client.get(path, headers=viewer)).status == 200, path
        for method, path, body in [
            ("PATCH", f"/api/v1/people/{person}", {"name": "Mallory"}),
            ("POST", f"/api/v1/people/{person}/merge", {"into": person}),
            ("PATCH", f"/api/v1/clusters/{c1}", {"hidden": True}),
            ("POST", f"/api/v1/clusters/{c1}/name", {"name": "Mallory"}),
            ("POST", f"/api/v1/clusters/{c1}/merge", {"into": c2}),
            ("POST", f"/api/v1/clusters/{c1}/split", {"faces": [face]}),
            ("POST", f"/api/v1/faces/{face}/reject", None),
            ("POST", f"/api/v1/faces/{face}/assign", {"person": person}),
            ("PATCH", f"/api/v1/faces/{face}", {"hidden": True}),
        ]:
            r = await client.request(method, path, json=body, headers=viewer)
            assert r.status == 403, f"viewer {method} {path}: {r.status}"
        assert [p["name"] for p in await (await client.get("/api/v1/people", headers=viewer)).json()] == ["Someone"]
        # unknown ids: 404 with the store's message; impossible requests: 400 with it
        cases = [
            ("PATCH", "/api/v1/people/nosuch", {"name": "x"}, 404, "no person"),
            ("POST", f"/api/v1/people/{person}/merge", {"into": "nosuch"}, 404, "no person"),
            ("POST", f"/api/v1/people/{person}/merge", {"into": person}, 400, "into itself"),
            ("POST", "/api/v1/clusters/nosuch/name", {"name": "x"}, 404, "no cluster"),
            ("POST", f"/api/v1/clusters/{c1}/name", {"name": "   "}, 400, "needs a name"),
            ("POST", f"/api/v1/clusters/{c1}/merge", {"into": c1}, 400, "into itself"),
            ("POST", f"/api/v1/clusters/{c1}/split", {"faces": [face]}, 400, "is not in cluster"),
            ("POST", f"/api/v1/clusters/{c1}/split", {"faces": []}, 422, "body.faces"),
            ("POST", "/api/v1/faces/nosuch/reject", None, 404, "no face"),
            ("POST", f"/api/v1/faces/{face}/assign", {"person": "nosuch"}, 404, "no person"),
            ("PATCH", f"/api/v1/people/{person}", {}, 422, "name"),
            ("GET", f"/api/v1/people/{person}/faces?cursor=abc", None, 400, "cursor"),
        ]
        for method, path, body, status, text in cases:
            r = await client.request(method, path, json=body, headers=user)
            answer = await r.json()
            assert r.status == status and text in answer["message"], (method, path, r.status, answer)
        # a crop path is made from the database value and must stay inside data/thumbs
        url = f"/api/v1/t/faces/{face}/crop"
        assert (await client.get(url, headers=user)).status == 200
        for bad in ("../shoebox.db", "/etc/passwd", "faces/../../secret.key", "", "faces"):
            await app.db.execute_write("UPDATE faces SET crop_key = ? WHERE uid = ?", (bad, face))
            r = await client.get(url, headers=user)
            body = await r.read()
            assert r.status == 404 and b"SQLite format" not in body and b"root:" not in body, bad
        assert (await client.get("/api/v1/t/faces/nosuch/crop", headers=user)).status == 404


@pytest.mark.slow
async def test_labels_renamed_merged_hidden_added_removed_and_kept_through_a_retag(copy: tuple[Path, Path]) -> None:
    library, data = copy
    config = make_config(library, data)
    async with api(config) as (app, client):
        await add_user(app, "ann", Role.USER)
        await add_user(app, "vera", Role.VIEWER)
        h, viewer = auth(await login(client, "ann")), auth(await login(client, "vera"))
        rocks, flower = (await photo_ids(app))["el_torcal_rocks.jpg"], (await photo_ids(app))["cyclamen_persicum.jpg"]
        rock_labels = (await (await client.get(f"/api/v1/photos/{rocks}", headers=h)).json())["labels"]
        flower_labels = (await (await client.get(f"/api/v1/photos/{flower}", headers=h)).json())["labels"]
        renamed, dropped = rock_labels[0]["name"], flower_labels[0]["name"]
        assert renamed != dropped and renamed not in {label["name"] for label in flower_labels}
        labels = await (await client.get("/api/v1/labels", headers=viewer)).json()
        by_name = {label["name"]: label for label in labels}
        assert by_name[renamed]["count"] >= 1 and all(label["count"] >= 1 for label in labels)
        assert [label["count"] for label in labels] == sorted((label["count"] for label in labels), reverse=True)

        async with events_of(app) as seen:
            # add by hand: a new label, found by search at once
            r = await client.post(f"/api/v1/photos/{rocks}/labels", json={"name": "Holiday"}, headers=h)
            assert r.status == 201 and "Holiday" in {label["name"] for label in (await r.json())["labels"]}
            assert await found(client, h, "label:holiday") == {rocks}
            # remove one the classifier gave
            r = await client.delete(f"/api/v1/photos/{flower}/labels", params={"name": dropped}, headers=h)
            assert r.status == 200 and dropped not in {label["name"] for label in (await r.json())["labels"]}
            assert flower not in await found(client, h, f'label:"{dropped}"')
            r = await client.delete(f"/api/v1/photos/{flower}/labels", params={"name": dropped}, headers=h)
            assert r.status == 404
        types = [(e["type"], e["data"].get("label") or e["data"].get("label_added") or e["data"].get("label_removed"))
                 for e in seen]
        assert types == [("label.created", "Holiday"), ("label.updated", "Holiday"), ("photo.updated", "Holiday"),
                         ("label.updated", dropped), ("photo.updated", dropped)]

        # rename a classifier label; then rename "Holiday" to the same new name: merged into it
        r = await client.patch(f"/api/v1/labels/{by_name[renamed]['id']}", json={"name": "Stones"}, headers=h)
        out = await r.json()
        assert r.status == 200 and out["name"] == "Stones" and not out["merged"] and out["aliases"] == [renamed]
        holiday = next(label for label in await (await client.get("/api/v1/labels", headers=h)).json()
                       if label["name"] == "Holiday")
        r = await client.patch(f"/api/v1/labels/{holiday['id']}", json={"name": "stones"}, headers=h)
        out = await r.json()
        assert r.status == 200 and out["merged"] and out["id"] == by_name[renamed]["id"]
        assert sorted(out["aliases"]) == sorted(["Holiday", renamed])
        assert await found(client, h, "label:stones") == {rocks} and await found(client, h, "Stones") >= {rocks}

    # the classifier runs again over everything
    result = shoebox("tag", "--rerun", "--library", str(library), "--data", str(data))
    assert "tagged" in result.stderr

    async with api(config) as (app, client):
        h = auth(await login(client, "ann"))
        detail = await (await client.get(f"/api/v1/photos/{rocks}", headers=h)).json()
        now = {label["name"]: label["source"] for label in detail["labels"]}
        assert "Stones" in now and renamed not in now, now   # the rename holds: the old name lands on it
        assert "Holiday" not in now                           # merged away for good
        # the classifier did say the old name again: its label was re-made as an empty hidden shell
        # and the photo's row went to the renamed label (migration 0006's triggers)
        shell = await app.db.fetchone("SELECT hidden, (SELECT count(*) FROM photo_labels pl WHERE pl.label_id = l.id)"
                                      " AS n FROM labels l WHERE name = ?", (renamed,))
        assert shell is not None and shell["hidden"] == 1 and shell["n"] == 0
        flower_now = {label["name"] for label in (await (await client.get(f"/api/v1/photos/{flower}",
                                                                          headers=h)).json())["labels"]}
        assert dropped not in flower_now                      # removed stays removed
        listed = {label["name"] for label in await (await client.get("/api/v1/labels", headers=h)).json()}
        assert renamed not in listed and "Holiday" not in listed and "Stones" in listed
        assert await found(client, h, "label:stones") == {rocks}
        assert app.db is not None and await app.db.write(verify_search_index)

        # hide a label: it leaves the list, photos and search; shown again, it is back
        stones = next(label for label in await (await client.get("/api/v1/labels", headers=h)).json()
                      if label["name"] == "Stones")
        r = await client.patch(f"/api/v1/labels/{stones['id']}", json={"hidden": True}, headers=h)
        assert r.status == 200 and (await r.json())["hidden"]
        assert "Stones" not in {label["name"] for label in await (await client.get("/api/v1/labels", headers=h)).json()}
        assert "Stones" in {label["name"] for label in await (await client.get(
            "/api/v1/labels", params={"hidden": "true"}, headers=h)).json()}
        assert rocks not in await found(client, h, "Stones")
        await client.patch(f"/api/v1/labels/{stones['id']}", json={"hidden": False}, headers=h)
        assert rocks in await found(client, h, "Stones")

        # refusals: a viewer changes nothing; unknown label 404; bad input named
        viewer = auth(await login(client, "vera"))
        for method, path, kwargs in [
            ("PATCH", f"/api/v1/labels/{stones['id']}", {"json": {"name": "Mine"}}),
            ("POST", f"/api/v1/photos/{rocks}/labels", {"json": {"name": "Mine"}}),
            ("DELETE", f"/api/v1/photos/{rocks}/labels", {"params": {"name": "Stones"}}),
        ]:
            assert (await client.request(method, path, headers=viewer, **kwargs)).status == 403, (method, path)
        assert (await client.patch("/api/v1/labels/999999", json={"name": "x"}, headers=h)).status == 404
        assert (await client.patch(f"/api/v1/labels/{stones['id']}", json={}, headers=h)).status == 422
        r = await client.patch(f"/api/v1/labels/{stones['id']}", json={"name": "   "}, headers=h)
        assert r.status == 400 and (await r.json())["details"]["field"] == "name"
        assert (await client.post("/api/v1/photos/nosuch/labels", json={"name": "x"}, headers=h)).status == 404
        assert "Stones" in {label["name"] for label in (await (await client.get(
            f"/api/v1/photos/{rocks}", headers=h)).json())["labels"]}

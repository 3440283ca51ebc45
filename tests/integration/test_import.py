"""Server-side imports and index control, as an admin (API), a home automation (MQTT command
handler) and an operator (`shoebox import`) use them: dated copies with sidecars and Live Photo
pairs kept together, duplicates skipped, a report, moves that delete a source only after its
copy is verified; and starting, stopping and following the indexer."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from daemon.auth.roles import Role
from daemon.library.importer import CopyFailed, ImportRefused, copy_verified
from tests.conftest import copy_sample
from tests.integration.api_support import add_user, api, auth, clone, login, settings
from tests.integration.support import make_config, shoebox
from tests.integration.test_live_photos import make_clip
from tests.waiting import wait_until_async

S = "exif-samples/jpg/"
SIDECAR = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
 <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"
   xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" photoshop:DateCreated="2011-02-03T04:05:06">
  <dc:title><rdf:Alt><rdf:li xml:lang="x-default">Beach</rdf:li></rdf:Alt></dc:title>
 </rdf:Description></rdf:RDF></x:xmpmeta>"""


def sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def card(samples: Path, root: Path) -> Path:
    """A memory card's worth: a Live Photo pair by name, a photo with an XMP sidecar, a photo
    the library has, the same photo twice on the card, a sidecar without its photo, a text file."""
    src = root / "card"
    copy_sample(samples, S + "gps/DSCN0012.jpg", src / "DCIM", "IMG_0042.JPG")
    make_clip(src / "DCIM" / "IMG_0042.MOV", 2)
    copy_sample(samples, S + "xmp/BlueSquare.jpg", src / "DCIM")
    (src / "DCIM" / "BlueSquare.jpg.xmp").write_text(SIDECAR)
    copy_sample(samples, S + "Canon_40D.jpg", src / "DCIM")  # already in the library
    copy_sample(samples, S + "Kodak_CX7530.jpg", src / "DCIM")
    copy_sample(samples, S + "Kodak_CX7530.jpg", src / "backup")  # the same photo twice on the card
    (src / "DCIM" / "lost.xmp").write_text(SIDECAR)
    (src / "DCIM" / "notes.txt").write_text("not a photo")
    copy_sample(samples, S + "Olympus_C8080WZ.jpg", src / ".Trashes")  # hidden: never looked at
    return src


async def finished(client: Any, headers: dict[str, str], import_id: str) -> dict[str, Any]:
    async def report() -> dict[str, Any] | None:
        r = await client.get(f"/api/v1/import/{import_id}", headers=headers)
        assert r.status == 200
        body = await r.json()
        return body if body["state"] != "running" else None

    return await wait_until_async(report, 30, interval=0.1, what="the import to finish")


async def test_an_import_copies_into_dated_folders_keeps_pairs_and_sidecars_and_skips_duplicates(
        copy: tuple[Path, Path], samples: Path, tmp_path: Path) -> None:
    library, data = copy
    src = card(samples, tmp_path)
    before = {p: sha1(p) for p in src.rglob("*") if p.is_file()}
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        h = auth(await login(client, "ann"))
        events = app.events.bus.stream()
        first_event = asyncio.ensure_future(events.__anext__())
        r = await client.post("/api/v1/import", json={"folder": str(src)}, headers=h)
        assert r.status == 202, await r.text()
        started = await r.json()
        assert started["state"] == "running" and started["move"] is False
        assert r.headers["Location"].endswith(started["id"])
        report = await finished(client, h, started["id"])
        assert report["state"] == "finished" and report["error"] is None
        assert report["counts"] == {"copied": 5, "moved": 0, "skipped": 3, "failed": 0, "ignored": 1}
        assert report["progress"]["done"] == report["progress"]["files"] == 8

        by_source = {Path(e["source"]).relative_to(src).as_posix(): e for e in report["copied"]}
        still, clip = by_source["DCIM/IMG_0042.JPG"], by_source["DCIM/IMG_0042.MOV"]
        # dated by the photo's EXIF DateTimeOriginal (2008:10:22 16:29:49), named date + short hash
        base = f"2008/10/20081022_162949_{sha1(src / 'DCIM/IMG_0042.JPG')[:8]}"
        assert still["target"] == base + ".jpg"
        assert clip["target"] == base + ".mov", "a Live Photo's video keeps its still's new name"
        blue = by_source["DCIM/BlueSquare.jpg"]
        assert blue["target"].startswith("2011/02/20110203_040506_"), "the sidecar's date wins, as in the index"
        assert by_source["DCIM/BlueSquare.jpg.xmp"]["target"] == blue["target"] + ".xmp"
        for entry in report["copied"]:
            assert sha1(library / entry["target"]) == entry["sha1"] == before[Path(entry["source"])]
        skipped = {Path(e["source"]).relative_to(src).as_posix(): e for e in report["skipped"]}
        assert skipped["DCIM/Canon_40D.jpg"]["duplicate_of"] == "library: camera/Canon_40D.jpg"
        assert {"DCIM/Kodak_CX7530.jpg", "backup/Kodak_CX7530.jpg"} - set(by_source) - set(skipped) == set()
        kodak_dup = skipped.get("backup/Kodak_CX7530.jpg") or skipped["DCIM/Kodak_CX7530.jpg"]
        assert kodak_dup["reason"] == "duplicate" and kodak_dup["duplicate_of"].startswith("import: ")
        assert skipped["DCIM/lost.xmp"]["reason"].startswith("a sidecar without")
        assert report["ignored"] == [str(src / "DCIM" / "notes.txt")]
        # a copy never touches its source; nothing hidden was imported
        assert {p: sha1(p) for p in src.rglob("*") if p.is_file()} == before
        assert not list(library.rglob("*Olympus*")) and not list(library.rglob(".shoebox-*"))

        # indexed: the pair is one Live Photo, the sidecar's title is on its photo
        await app.queue.wait_idle()
        rows = await app.db.fetchall("SELECT p.uid, p.type, p.title, f.path_text FROM files f"
                                     " JOIN photos p ON p.id = f.photo_id")
        photo_of = {r["path_text"]: r for r in rows}
        assert photo_of[still["target"]]["uid"] == photo_of[clip["target"]]["uid"]
        assert photo_of[still["target"]]["type"] == "live"
        assert photo_of[blue["target"]]["title"] == "Beach"
        assert await app.db.scalar("SELECT count(*) FROM photos") == 5 + 3

        event = await asyncio.wait_for(first_event, 10)
        while event.type != "import.finished":
            event = await asyncio.wait_for(events.__anext__(), 10)
        assert event.data["id"] == started["id"] and event.data["copied"] == 5 and event.data["skipped"] == 3
        await events.aclose()

        # the report is kept: listed, and readable after a restart
        listed = await (await client.get("/api/v1/import", headers=h)).json()
        assert listed[0]["id"] == started["id"] and "copied" not in listed[0]
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "bob", Role.ADMIN)
        h = auth(await login(client, "bob"))
        again = await (await client.get(f"/api/v1/import/{started['id']}", headers=h)).json()
        assert again["copied"] == report["copied"]
        # importing the same card again brings nothing new
        r = await client.post("/api/v1/import", json={"folder": str(src)}, headers=h)
        second = await finished(client, h, (await r.json())["id"])
        assert second["counts"]["copied"] == 0 and second["counts"]["skipped"] == 8


async def test_imports_refuse_the_library_the_data_folder_and_bad_folders_and_need_an_admin(
        copy: tuple[Path, Path], tmp_path: Path) -> None:
    library, data = copy
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        await add_user(app, "ursula", Role.USER)
        h = auth(await login(client, "ann"))
        for folder, words in [
            (str(library), "inside the library"),
            (str(library / "camera"), "inside the library"),
            (str(data), "inside Shoebox's data folder"),
            (str(data / "thumbs"), "inside Shoebox's data folder"),
            (str(tmp_path), "contains the library"),
            (str(tmp_path / "nowhere"), "does not exist"),
            ("camera", "absolute path"),
            ("", "name a folder"),
        ]:
            r = await client.post("/api/v1/import", json={"folder": folder}, headers=h)
            body = await r.json()
            assert r.status == 400 and words in body["message"] and body["details"]["field"] == "folder", (folder, body)
        r = await client.post("/api/v1/import", json={"folder": str(tmp_path), "delete": True}, headers=h)
        assert r.status == 422 and "body.delete" in (await r.json())["message"]
        user = auth(await login(client, "ursula"))
        r = await client.post("/api/v1/import", json={"folder": "/tmp"}, headers=user)
        assert r.status == 403
        assert (await client.get("/api/v1/import", headers=user)).status == 403
        r = await client.get("/api/v1/import/0123456789abcdef", headers=h)
        assert r.status == 404 and (await r.json())["error"] == "not_found"
        assert (await client.get("/api/v1/import/../../etc", headers=h)).status in (404, 422)
        assert not (data / "imports").exists() or not list((data / "imports").iterdir())


async def test_the_mqtt_import_command_imports_the_named_or_default_folder_and_reports_errors(
        copy: tuple[Path, Path], samples: Path, tmp_path: Path) -> None:
    library, _ = copy
    inbox = tmp_path / "inbox"
    copy_sample(samples, S + "Olympus_C8080WZ.jpg", inbox)
    async with api(make_config(*copy, **settings(import__import_folder=str(inbox)))) as (app, client):
        events = app.events.bus.stream()
        got = asyncio.ensure_future(events.__anext__())
        await app.events.command("import", b"")  # what `<base>/<id>/cmd/import` with an empty payload runs
        event = await asyncio.wait_for(got, 10)
        while event.type != "import.finished":
            event = await asyncio.wait_for(events.__anext__(), 10)
        assert event.data["copied"] == 1 and event.data["source"] == str(inbox)
        assert len(list(library.glob("2006/10/20061022_*.jpg"))) == 1
        with pytest.raises(ImportRefused):  # refused: raised to the task, and announced as an error event
            await app.events.command("import", str(library).encode())
        event = await asyncio.wait_for(events.__anext__(), 10)
        assert event.type == "error" and event.data["kind"] == "import" and "inside the library" in event.data["error"]
        await events.aclose()


@pytest.mark.slow
def test_shoebox_import_moves_only_verified_copies_and_prints_the_report(
        indexed: tuple[Path, Path], samples: Path, tmp_path: Path) -> None:
    library, data = clone(indexed, tmp_path)
    src = tmp_path / "phone"
    olympus = copy_sample(samples, S + "Olympus_C8080WZ.jpg", src)
    (src / "Olympus_C8080WZ.xmp").write_text(SIDECAR.replace("Beach", "Harbour").replace(
        ' photoshop:DateCreated="2011-02-03T04:05:06"', ""))
    nikon = copy_sample(samples, S + "Nikon_D70.jpg", src)  # the library has it: skipped, so kept
    originals = {"olympus": olympus.read_bytes(), "xmp": (src / "Olympus_C8080WZ.xmp").read_bytes()}
    out = shoebox("import", str(src), "--move", "--json", "--library", str(library), "--data", str(data),
                  "--tagging-enabled", "false")
    report = json.loads(out.stdout)
    assert report["counts"] == {"copied": 0, "moved": 2, "skipped": 1, "failed": 0, "ignored": 0}
    moved = {Path(e["source"]).name: e["target"] for e in report["moved"]}
    jpg = moved["Olympus_C8080WZ.jpg"]
    assert jpg.startswith("2006/10/20061022_154429_") and moved["Olympus_C8080WZ.xmp"] == jpg[:-4] + ".xmp"
    assert (library / jpg).read_bytes() == originals["olympus"]
    assert (library / moved["Olympus_C8080WZ.xmp"]).read_bytes() == originals["xmp"]
    assert not olympus.exists() and not (src / "Olympus_C8080WZ.xmp").exists()
    assert nikon.exists(), "a skipped duplicate is never deleted"
    assert "1 skipped" in out.stderr and "2 moved" in out.stderr
    # the command indexed what it brought in: the sidecar's title is on the photo
    status = json.loads(shoebox("status", "--json", "--library", str(library), "--data", str(data)).stdout)
    assert status["photos"]["total"] == 6 and status["queue"].get("index", 0) == 0
    export = json.loads(shoebox("export", "--json", "-", "--library", str(library), "--data", str(data)).stdout)
    assert [p["title"] for p in export if any(f["path"] == jpg for f in p["files"])] == ["Harbour"]
    # the plain text report, and a refusal
    refused = shoebox("import", str(library / "camera"), "--library", str(library), "--data", str(data), check=False)
    assert refused.returncode == 2 and "inside the library" in refused.stderr


def test_a_copy_that_does_not_match_its_source_is_never_placed_and_the_source_stays(samples: Path,
                                                                                   tmp_path: Path) -> None:
    src = copy_sample(samples, S + "Kodak_CX7530.jpg", tmp_path / "src")
    content = src.read_bytes()
    target = tmp_path / "library" / "2005" / "08"
    with pytest.raises(CopyFailed, match="changed while it was being imported"):
        copy_verified(src, target, "x.jpg", sha1="0" * 40, size=len(content), reread=True)
    assert src.read_bytes() == content and list(target.iterdir()) == []
    placed = copy_verified(src, target, "x.jpg", sha1=sha1(src), size=len(content), reread=True)
    again = copy_verified(src, target, "x.jpg", sha1=sha1(src), size=len(content), reread=True)
    assert placed.name == "x.jpg" and again.name == "x-1.jpg" and placed.read_bytes() == content


async def test_index_stop_keeps_work_queued_start_resumes_it_and_progress_follows(
        copy: tuple[Path, Path], samples: Path) -> None:
    library, _ = copy
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        await add_user(app, "ursula", Role.USER)
        await add_user(app, "vera", Role.VIEWER)
        h, user, viewer = [auth(await login(client, n)) for n in ("ann", "ursula", "vera")]
        idle = await (await client.get("/api/v1/index", headers=viewer)).json()
        assert idle["paused"] is False and idle["queued"] == {"index": 0, "tag": 0} and idle["eta_s"] == 0.0
        assert (await client.post("/api/v1/index/stop", headers=user)).status == 403
        assert (await client.post("/api/v1/index/start", json={}, headers=user)).status == 403

        stopped = await (await client.post("/api/v1/index/stop", headers=h)).json()
        assert stopped["paused"] is True
        for name in ("Kodak_CX7530.jpg", "Olympus_C8080WZ.jpg", "Fujifilm_FinePix_E500.jpg"):
            copy_sample(samples, S + name, library / "new")
        await app.scan()  # the watcher or a rescan finds them; stopped, nothing is indexed
        # not a wait for something: time for a paused queue to (wrongly) index what it holds
        await asyncio.sleep(1.0)
        paused = await (await client.get("/api/v1/index", headers=viewer)).json()
        assert paused["paused"] is True and paused["queued"]["index"] == 3 and paused["eta_s"] is None
        assert await app.db.scalar("SELECT count(*) FROM files WHERE path_text LIKE 'new/%' AND state = 'new'") == 3

        for path, status in (("../outside", 400), ("/etc", 400), (".hidden", 400), ("no/such/folder", 404)):
            r = await client.post("/api/v1/index/start", json={"path": path}, headers=h)
            assert r.status == status and (await r.json())["details"]["field"] == "path", path
        r = await client.post("/api/v1/index/start", json={"path": "new"}, headers=h)
        assert r.status == 202 and await r.json() == {"started": True, "path": "new", "resumed": True}
        async def drained() -> dict[str, Any] | None:
            body = await (await client.get("/api/v1/index", headers=viewer)).json()
            return body if body["queued"]["index"] == 0 and not body["indexing"] else None

        progress = await wait_until_async(drained, 20, interval=0.1, what="the resumed queue to drain")
        assert progress["paused"] is False and progress["done"]["index"] >= 3 and progress["failed"] == 0
        assert progress["files_per_s"] > 0 and progress["eta_s"] == 0.0
        assert await app.db.scalar("SELECT count(*) FROM files WHERE path_text LIKE 'new/%' AND state = 'indexed'") == 3
        # a full scan by start: nothing new, nothing queued
        r = await client.post("/api/v1/index/start", json={}, headers=h)
        assert r.status == 202 and (await r.json())["resumed"] is False

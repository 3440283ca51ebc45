"""Uploads through the API as the web app and scripts send them: a real JPEG is a photo as soon as
the upload answers, the same file again is not stored twice, hostile names land safely, limits
and malformed bodies are refused with JSON errors and leave nothing behind, and a 200 MB upload
does not grow the real `shoebox serve` process's memory."""

from __future__ import annotations

import asyncio
import os
import unicodedata
from pathlib import Path

import aiohttp
import pytest

from daemon.auth.roles import Role
from tests.integration.api_support import (Daemon, add_user, api, auth, clone, create_admin, login,
                                           photo_ids, settings)
from tests.integration.support import make_config
from tests.waiting import wait_until_async

S = "exif-samples/jpg/"


def form(*files: tuple[str, bytes]) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for name, content in files:
        data.add_field("file", content, filename=name, content_type="application/octet-stream")
    return data


def raw_form(*files: tuple[str, bytes]) -> tuple[bytes, dict[str, str]]:
    """A multipart body with the file names written as they are (as a browser or curl sends them;
    aiohttp's own FormData would percent-encode the slashes away)."""
    boundary = "----shoebox-test-boundary"
    body = b""
    for name, content in files:
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{quoted}\"\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n").encode() + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def stored_files(library: Path) -> list[str]:
    """Every file under the upload folder, temporary ones included (relative, sorted)."""
    root = library / "Uploads"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def test_an_uploaded_jpeg_is_a_photo_at_once_and_a_second_upload_is_not_stored_again(
        copy: tuple[Path, Path], samples: Path) -> None:
    library, _ = copy
    jpeg = (samples / S / "Fujifilm_FinePix_E500.jpg").read_bytes()
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ursula", Role.USER)
        h = auth(await login(client, "ursula"))
        r = await client.post("/api/v1/uploads", data=form(("Fujifilm_FinePix_E500.jpg", jpeg)), headers=h)
        assert r.status == 201, await r.text()
        item = (await r.json())["files"][0]
        # stored under the upload folder, in the month it was taken (EXIF: 2006-08-17), and indexed
        assert item["path"] == "Uploads/2006/08/Fujifilm_FinePix_E500.jpg"
        assert item["state"] == "indexed" and item["duplicate"] is False and item["photo"]
        assert (library / item["path"]).read_bytes() == jpeg
        page = await (await client.get("/api/v1/photos", headers=h)).json()
        assert item["photo"] in [p["id"] for p in page["photos"]]
        detail = await (await client.get(f"/api/v1/photos/{item['photo']}", headers=h)).json()
        assert detail["make"] == "FUJIFILM" and detail["taken_at"].startswith("2006-08-17")

        # the same bytes again, under another name: the existing photo, no second copy
        r = await client.post("/api/v1/uploads", data=form(("copy of it.JPG", jpeg)), headers=h)
        assert r.status == 201
        again = (await r.json())["files"][0]
        assert again["duplicate"] is True and again["state"] == "duplicate"
        assert again["photo"] == item["photo"] and again["path"] == item["path"]
        # a photo that was in the library before any upload is recognised as well
        canon = (library / "camera" / "Canon_40D.jpg").read_bytes()
        r = await client.post("/api/v1/uploads", data=form(("IMG_0001.jpg", canon), ("twice.jpg", jpeg)), headers=h)
        answer = (await r.json())["files"]
        assert [a["duplicate"] for a in answer] == [True, True]
        assert answer[0]["photo"] == (await photo_ids(app))["Canon_40D.jpg"] and answer[0]["path"] == "camera/Canon_40D.jpg"
        assert stored_files(library) == ["2006/08/Fujifilm_FinePix_E500.jpg"]
        assert await app.db.scalar("SELECT count(*) FROM photos") == 6


async def test_the_same_photo_uploaded_twice_at_the_same_moment_is_stored_once(
        copy: tuple[Path, Path], samples: Path) -> None:
    library, _ = copy
    jpeg = (samples / S / "Canon_PowerShot_S40.jpg").read_bytes()
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ursula", Role.USER)
        h = auth(await login(client, "ursula"))
        answers = await asyncio.gather(*[
            client.post("/api/v1/uploads", data=form((f"phone{i}.jpg", jpeg)), headers=h) for i in range(3)])
        items = [(await r.json())["files"][0] for r in answers]
        assert sorted(r.status for r in answers) == [201, 201, 201]
        assert sorted(i["duplicate"] for i in items) == [False, True, True]
        assert len({i["photo"] for i in items}) == 1 and items[0]["photo"]
        assert len(stored_files(library)) == 1


async def test_several_files_in_one_request_and_hostile_names_land_safely_inside_the_upload_folder(
        copy: tuple[Path, Path], samples: Path, tmp_path: Path) -> None:
    library, _ = copy
    contents = {rel: (samples / S / rel).read_bytes() for rel in
                ("Kodak_CX7530.jpg", "Olympus_C8080WZ.jpg", "Canon_PowerShot_S40.jpg", "Samsung_Digimax_i50_MP3.jpg")}
    decomposed = unicodedata.normalize("NFD", "Café.jpg")
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ursula", Role.USER)
        h = auth(await login(client, "ursula"))
        body, headers = raw_form(
            ("../../etc/passwd.jpg", contents["Kodak_CX7530.jpg"]),
            (".hidden.jpg", contents["Olympus_C8080WZ.jpg"]),
            ("C:\\Users\\ann\\..\\x.jpg", contents["Canon_PowerShot_S40.jpg"]),
            (decomposed, contents["Samsung_Digimax_i50_MP3.jpg"]))
        r = await client.post("/api/v1/uploads", headers={**h, **headers}, data=body)
        assert r.status == 201, await r.text()
        paths = [f["path"] for f in (await r.json())["files"]]
        assert paths[0] == "Uploads/2005/08/passwd.jpg"
        assert paths[1] == "Uploads/2006/10/hidden.jpg"
        assert paths[2] == "Uploads/2003/12/x.jpg"
        assert paths[3].endswith("/" + unicodedata.normalize("NFC", "Café.jpg"))
        assert all(f["state"] == "indexed" and f["photo"] for f in (await r.json())["files"])
        assert not (tmp_path / "etc").exists() and not (library.parent / "etc").exists()
        # different content under a name that is taken (same month) gets a suffix; the first is untouched
        variant = contents["Kodak_CX7530.jpg"] + b"\x00trailing bytes after the image"
        r = await client.post("/api/v1/uploads", data=form(("passwd.jpg", variant)), headers=h)
        assert r.status == 201 and (await r.json())["files"][0]["path"] == "Uploads/2005/08/passwd-1.jpg"
        assert (library / paths[0]).read_bytes() == contents["Kodak_CX7530.jpg"]
        # nothing hidden or temporary is left behind
        assert not [f for f in stored_files(library) if Path(f).name.startswith(".")]


async def test_limits_malformed_bodies_wrong_types_and_roles_are_refused_and_leave_nothing(
        copy: tuple[Path, Path], samples: Path) -> None:
    library, _ = copy
    jpeg = (samples / S / "Kodak_CX7530.jpg").read_bytes()
    big = jpeg[:4] + os.urandom(3 * 1024 * 1024)
    config = make_config(*copy, **settings(import__max_upload_mib=2, import__max_request_mib=3))
    async with api(config) as (app, client):
        await add_user(app, "ursula", Role.USER)
        await add_user(app, "vera", Role.VIEWER)
        h = auth(await login(client, "ursula"))
        cases = [
            # (data, headers, status, error code)
            (form(("big.jpg", big)), {}, 413, "request_entity_too_large"),
            (form(("a.jpg", jpeg[:4] + os.urandom(2_500_000)), ("b.jpg", jpeg[:4] + os.urandom(1_500_000))), {}, 413,
             "request_entity_too_large"),
            (b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n\xff\xd8\xff\xe0 cut off",
             {"Content-Type": "multipart/form-data; boundary=xyz"}, 400, "malformed_multipart"),
            (b"garbage without any boundary", {"Content-Type": "multipart/form-data; boundary=xyz"}, 400,
             "malformed_multipart"),
            (b"whatever", {"Content-Type": "multipart/form-data"}, 400, "malformed_multipart"),
            (b'{"file": "x"}', {"Content-Type": "application/json"}, 400, "bad_request"),
            (form(("notes.txt", b"just text")), {}, 415, "unsupported_media_type"),
            (form(("fake.jpg", b"<html>not a photo</html>")), {}, 415, "unsupported_media_type"),
            (form(("photo.xmp", b"<x:xmpmeta/>")), {}, 415, "unsupported_media_type"),
            (form(("empty.jpg", b"")), {}, 400, "bad_request"),
        ]
        for data, headers, status, code in cases:
            r = await client.post("/api/v1/uploads", data=data, headers={**h, **headers})
            body = await r.json()
            assert r.status == status and body["error"] == code and body["message"], (status, body)
        # a form field that is not a file
        data = aiohttp.FormData(default_to_multipart=True)
        data.add_field("title", "holiday")
        r = await client.post("/api/v1/uploads", data=data, headers=h)
        assert r.status == 400 and (await r.json())["details"]["field"] == "file"
        # roles: a viewer may look, not add; nobody without credentials
        viewer = auth(await login(client, "vera"))
        r = await client.post("/api/v1/uploads", data=form(("ok.jpg", jpeg)), headers=viewer)
        assert r.status == 403 and (await r.json())["error"] == "forbidden"
        r = await client.post("/api/v1/uploads", data=form(("ok.jpg", jpeg)))
        assert r.status == 401
        # nothing of any of it is on disk, not even a temporary file, and nothing was indexed
        assert stored_files(library) == []
        assert await app.db.scalar("SELECT count(*) FROM files WHERE path_text LIKE 'Uploads/%'") == 0
        # the limits do not get in the way of a file within them
        r = await client.post("/api/v1/uploads", data=form(("ok.jpg", jpeg)), headers=h)
        assert r.status == 201 and stored_files(library) == ["2005/08/ok.jpg"]


async def test_with_indexing_stopped_an_upload_is_stored_and_answers_202_then_indexed_on_start(
        copy: tuple[Path, Path], samples: Path) -> None:
    library, _ = copy
    jpeg = (samples / S / "Olympus_C8080WZ.jpg").read_bytes()
    async with api(make_config(*copy, **settings())) as (app, client):
        await add_user(app, "ann", Role.ADMIN)
        h = auth(await login(client, "ann"))
        assert (await client.post("/api/v1/index/stop", headers=h)).status == 200
        r = await client.post("/api/v1/uploads", data=form(("queued.jpg", jpeg)), headers=h)
        assert r.status == 202
        item = (await r.json())["files"][0]
        assert item["state"] == "queued" and item["photo"] is None and (library / item["path"]).is_file()
        r = await client.post("/api/v1/index/start", json={}, headers=h)
        assert r.status == 202 and (await r.json())["resumed"] is True
        uid = await wait_until_async(
            lambda: app.db.scalar("SELECT p.uid FROM files f JOIN photos p ON p.id = f.photo_id WHERE f.path_text = ?",
                                  (item["path"],)), 10, interval=0.1, what="the resumed upload to be indexed")
        # the same content uploaded again now names the photo
        r = await client.post("/api/v1/uploads", data=form(("again.jpg", jpeg)), headers=h)
        assert (await r.json())["files"][0]["photo"] == uid


def vm_hwm_kib(pid: int, reset: bool = False) -> int:
    """The process's peak resident memory. With reset, the peak is first set back to the current
    resident size (Linux: `5` into /proc/PID/clear_refs), so a start-up peak cannot hide growth."""
    if reset:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


@pytest.mark.slow
def test_a_200_mb_upload_streams_to_disk_without_growing_the_server(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    """The real `shoebox serve`: its peak resident memory (VmHWM) before and after a 200 MB upload."""
    library, data = clone(indexed, tmp_path)
    create_admin(library, data)
    source = tmp_path / "big.jpg"
    with open(source, "wb") as fh:  # a JPEG header and random padding: passes the type checks
        fh.write(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
        for _ in range(200):
            fh.write(os.urandom(1024 * 1024))
    size = source.stat().st_size
    with Daemon(library, data, "--import-max-upload-mib", "300") as daemon:
        assert daemon.proc is not None
        token = daemon.login()["access_token"]

        async def send() -> tuple[int, dict]:
            async with aiohttp.ClientSession() as session:
                # warm up: one small upload first, so the first request's one-off costs are not counted
                small = (library / "camera" / "Canon_40D.jpg").read_bytes()
                async with session.post(f"{daemon.base}/api/v1/uploads", data=form(("warm.jpg", small)),
                                        headers={"Authorization": f"Bearer {token}"}) as r:
                    assert r.status in (201, 202)
                before = vm_hwm_kib(daemon.proc.pid, reset=True)
                with open(source, "rb") as fh:
                    data = aiohttp.FormData()
                    data.add_field("file", fh, filename="big.jpg", content_type="image/jpeg")
                    async with session.post(f"{daemon.base}/api/v1/uploads", data=data,
                                            headers={"Authorization": f"Bearer {token}"},
                                            timeout=aiohttp.ClientTimeout(total=300)) as r:
                        return r.status, {"before": before, **(await r.json())}

        status, body = asyncio.run(send())
        after = vm_hwm_kib(daemon.proc.pid)
    assert status in (201, 202), body
    item = body["files"][0]
    stored = library / item["path"]
    assert stored.stat().st_size == size and item["size"] == size
    growth_mib = (after - body["before"]) / 1024
    print(f"\nupload of {size / 2**20:.0f} MiB: serve VmHWM {body['before'] / 1024:.1f} -> {after / 1024:.1f} MiB "
          f"(+{growth_mib:.1f} MiB); indexing: {item['state']} {item['error'] or ''}")
    assert growth_mib < 32, f"the server's peak memory grew by {growth_mib:.1f} MiB for a {size >> 20} MiB upload"

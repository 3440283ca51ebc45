"""Confinement to the library (issue 9, point 1): no file outside the library is read as a photo,
sidecar or video, or served as an original, whatever links, `..` or renames say — checked when the
file is opened, not only when it was indexed.

A real library of sample photos, a real App (real SQLite, real workers, real exiftool) and its
real aiohttp server on a loopback port; the links are real symbolic links, made before indexing
and after it, to a file, a folder, a sidecar, the data folder's own files and /etc/passwd.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp.test_utils import TestClient

from daemon.app import App
from daemon.auth.roles import Role
from daemon.library.gate import Gate, OutsideLibrary
from tests.conftest import copy_sample
from tests.integration.api_support import add_user, api, auth, login, photo_ids, settings
from tests.integration.support import make_config

PASSWD = Path("/etc/passwd")
LEAK_TITLE = "LEAKED-FROM-OUTSIDE"
XMP = f"""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title><rdf:Alt>
<rdf:li xml:lang="x-default">{LEAK_TITLE}</rdf:li></rdf:Alt></dc:title></rdf:Description>
</rdf:RDF></x:xmpmeta>"""


class Layout:
    """tmp/library (the library), tmp/data (Shoebox's data), tmp/outside (somewhere else)."""

    def __init__(self, root: Path, samples: Path) -> None:
        self.library, self.data, self.outside = root / "library", root / "data", root / "outside"
        for name in ("Canon_40D.jpg", "Nikon_D70.jpg"):
            copy_sample(samples, f"exif-samples/jpg/{name}", self.library / "camera")
        copy_sample(samples, "exif-samples/jpg/Canon_PowerShot_S40.jpg", self.library / "other")
        # inside, but hidden (never walked itself): reachable only through links inside the library
        copy_sample(samples, "exif-samples/jpg/Kodak_CX7530.jpg", self.library / ".stash")
        copy_sample(samples, "exif-samples/jpg/Olympus_C8080WZ.jpg", self.library / ".stash" / "trip")
        # outside the library
        copy_sample(samples, "exif-samples/jpg/Pentax_K10D.jpg", self.outside)
        copy_sample(samples, "exif-samples/jpg/Sony_HDR-HC3.jpg", self.outside / "folder")
        (self.outside / "evil.xmp").write_text(XMP)

    def link(self, rel: str, target: Path | str) -> Path:
        path = self.library / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(target)
        return path

    def secrets(self) -> list[bytes]:
        """Bytes that must never come out of the API: /etc/passwd, the signing key, the database header."""
        out = [PASSWD.read_bytes()[:64], b"SQLite format 3"]
        key = self.data / "secret.key"
        if key.exists():
            out.append(key.read_bytes()[:16])
        return out


@pytest.fixture
def layout(tmp_path: Path, samples: Path) -> Layout:
    return Layout(tmp_path, samples)


async def admin_client(app: App, client: TestClient) -> dict[str, str]:
    await add_user(app, "ann", Role.ADMIN)
    return auth(await login(client, "ann"))


async def errors_by_path(app: App) -> dict[str, str]:
    assert app.db is not None
    rows = await app.db.fetchall("SELECT path_text, error FROM files WHERE state = 'error'")
    return {r["path_text"]: r["error"] for r in rows}


async def everything_served(client: TestClient, headers: dict[str, str], uids: list[str]) -> bytes:
    """Every photo's JSON, original and files, concatenated: what a client could get out."""
    out = b""
    for uid in uids:
        r = await client.get(f"/api/v1/photos/{uid}", headers=headers)
        out += await r.read()
        body = await r.json()
        for route in ["original", *[f"files/{i}" for i in range(len(body.get("files", [])))]]:
            r = await client.get(f"/api/v1/photos/{uid}/{route}", headers=headers)
            out += await r.read()
    return out


async def test_links_made_before_indexing_that_leave_the_library_are_skipped_with_a_reason(layout: Layout) -> None:
    lay = layout
    lay.link("links/out_file.jpg", lay.outside / "Pentax_K10D.jpg")
    lay.link("links/out_dir", lay.outside / "folder")
    lay.link("links/passwd.jpg", PASSWD)
    lay.link("links/db.jpg", lay.data / "shoebox.db")
    lay.link("links/key.jpg", lay.data / "secret.key")
    lay.link("links/sneaky.jpg", "../camera/../../outside/Pentax_K10D.jpg")  # `..` that climbs out
    lay.link("camera/Canon_40D.jpg.xmp", lay.outside / "evil.xmp")  # a sidecar that is a link out
    lay.link("links/inside.jpg", "../.stash/Kodak_CX7530.jpg")  # inside → inside: works
    lay.link("links/inside_dir", "../.stash/trip")

    async with api(make_config(lay.library, lay.data, **settings())) as (app, client):
        h = await admin_client(app, client)
        report = await app.index_once()
        names = await photo_ids(app)
        # the three real photos and the two reached through inside links; nothing from outside
        assert sorted(names) == ["Canon_40D.jpg", "Canon_PowerShot_S40.jpg", "Nikon_D70.jpg", "Olympus_C8080WZ.jpg",
                                 "inside.jpg"]
        assert app.db is not None
        paths = {r["path_text"] for r in await app.db.fetchall("SELECT path_text FROM files")}
        assert "links/inside_dir/Olympus_C8080WZ.jpg" in paths
        assert not any(p.startswith("links/out_dir") for p in paths), paths  # the folder outside was never listed
        assert ("links/out_dir", "a link to a folder outside the library, not followed"
                " (see [index] allowed_link_targets)") in report.unreadable

        errors = await errors_by_path(app)
        for rel in ("links/out_file.jpg", "links/passwd.jpg", "links/sneaky.jpg"):
            assert "leads outside the library" in errors[rel], errors
        for rel in ("links/db.jpg", "links/key.jpg"):
            assert "data folder" in errors[rel], errors
        # the links are described by themselves: nothing about their targets reached the index
        size = await app.db.scalar("SELECT size FROM files WHERE path_text = 'links/passwd.jpg'")
        assert size == len(str(PASSWD))
        # and `shoebox status` (the API's /status) shows why
        status = await (await client.get("/api/v1/status", headers=h)).json()
        assert any("outside the library" in e["error"] for e in status["errors"]), status

        # the sidecar link was not read: no title from it, and a warning says why
        canon = names["Canon_40D.jpg"]
        photo = await (await client.get(f"/api/v1/photos/{canon}", headers=h)).json()
        assert photo.get("title") != LEAK_TITLE
        warnings = [w for f in photo["files"] for w in (f.get("warnings") or [])]
        assert any("Canon_40D.jpg.xmp ignored" in w and "outside the library" in w for w in warnings), photo["files"]
        r = await client.get("/api/v1/photos", params={"q": LEAK_TITLE}, headers=h)
        assert (await r.json())["photos"] == []

        served = await everything_served(client, h, list(names.values()))
        for secret in lay.secrets():
            assert secret not in served
        # the inside link serves its photo
        r = await client.get(f"/api/v1/photos/{names['inside.jpg']}/original", headers=h)
        assert r.status == 200 and await r.read() == (lay.library / ".stash/Kodak_CX7530.jpg").read_bytes()


@pytest.mark.parametrize("target", ["passwd", "secret_key", "database", "outside_photo"])
async def test_a_photo_replaced_by_a_link_after_indexing_is_refused_when_opened(layout: Layout, target: str) -> None:
    lay = layout
    async with api(make_config(lay.library, lay.data, **settings())) as (app, client):
        h = await admin_client(app, client)
        await app.index_once()
        uid = (await photo_ids(app))["Nikon_D70.jpg"]
        r = await client.get(f"/api/v1/photos/{uid}/original", headers=h)
        assert r.status == 200  # served while it is the real photo

        # a guest link that allows downloads, made while the photo was honest
        r = await client.post("/api/v1/shares", json={"photos": [uid], "download": True}, headers=h)
        assert r.status == 201, await r.text()
        token = (await r.json())["token"]
        assert (await client.get(f"/api/v1/s/{token}/photos/{uid}/original")).status == 200

        dest = {"passwd": PASSWD, "secret_key": lay.data / "secret.key", "database": lay.data / "shoebox.db",
                "outside_photo": lay.outside / "Pentax_K10D.jpg"}[target]
        lay.link("camera/Nikon_D70.jpg", dest)
        for url, headers in [(f"/api/v1/photos/{uid}/original", h), (f"/api/v1/photos/{uid}/files/0", h),
                             (f"/api/v1/photos/{uid}/original?download=true", h),
                             (f"/api/v1/s/{token}/photos/{uid}/original", {})]:
            r = await client.get(url, headers=headers)
            body = await r.read()
            assert r.status in (403, 404), (url, r.status)
            assert r.headers["Content-Type"].startswith("application/json")
            assert dest.read_bytes()[:32] not in body
            for secret in lay.secrets():
                assert secret not in body

        # a missing thumbnail is not made from what the link now points to
        key = await app.db.scalar("SELECT thumb_key FROM photos WHERE uid = ?", (uid,))
        for thumb in (lay.data / "thumbs").rglob(f"{key}_fit_1280_*"):
            thumb.unlink()
        r = await client.get(f"/api/v1/t/{key}/fit_1280", headers=h)
        assert r.status == 404, r.status


async def test_hard_links_to_the_data_folders_files_are_refused(layout: Layout) -> None:
    """A hard link has no target to resolve: it is recognised as the data folder's file by its inode."""
    lay = layout
    async with api(make_config(lay.library, lay.data, **settings())) as (app, client):
        h = await admin_client(app, client)
        (lay.library / "links").mkdir()
        os.link(lay.data / "secret.key", lay.library / "links" / "key.jpg")
        os.link(lay.data / "shoebox.db", lay.library / "links" / "db.png")
        await app.index_once()
        errors = await errors_by_path(app)
        for rel in ("links/key.jpg", "links/db.png"):
            assert "hard link to a file in Shoebox's own data folder" in errors[rel], errors
        # and one made after indexing, in place of a photo
        uid = (await photo_ids(app))["Nikon_D70.jpg"]
        (lay.library / "camera" / "Nikon_D70.jpg").unlink()
        os.link(lay.data / "secret.key", lay.library / "camera" / "Nikon_D70.jpg")
        r = await client.get(f"/api/v1/photos/{uid}/original", headers=h)
        assert r.status == 403
        assert (lay.data / "secret.key").read_bytes()[:16] not in await r.read()


async def test_a_folder_swapped_for_a_link_after_indexing_is_refused(layout: Layout, samples: Path) -> None:
    lay = layout
    async with api(make_config(lay.library, lay.data, **settings())) as (app, client):
        h = await admin_client(app, client)
        await app.index_once()
        uid = (await photo_ids(app))["Canon_40D.jpg"]
        # the folder goes, and a link of the same name leads to a folder outside with a file of that name
        (lay.library / "camera").rename(lay.library / ".camera-old")
        copy_sample(samples, "exif-samples/jpg/Fujifilm_FinePix_E500.jpg", lay.outside / "fake", "Canon_40D.jpg")
        lay.link("camera", lay.outside / "fake")
        r = await client.get(f"/api/v1/photos/{uid}/original", headers=h)
        assert r.status == 403 and (await r.json())["error"] == "forbidden"
        assert (await r.read()).find(b"\xff\xd8") == -1
        # deleting the photo's files deletes nothing outside the library
        r = await client.delete(f"/api/v1/photos/{uid}", params={"delete_files": "true"}, headers=h)
        assert r.status == 409, r.status
        assert (lay.outside / "fake" / "Canon_40D.jpg").exists()
        # a rescan does not take the folder in either
        report = await app.index_once()
        assert ("camera", "a link to a folder outside the library, not followed"
                " (see [index] allowed_link_targets)") in report.unreadable


async def test_a_hand_edited_database_path_with_dotdot_is_refused(layout: Layout) -> None:
    lay = layout
    async with api(make_config(lay.library, lay.data, **settings())) as (app, client):
        h = await admin_client(app, client)
        await app.index_once()
        uid = (await photo_ids(app))["Nikon_D70.jpg"]
        assert app.db is not None
        for bad in (b"../outside/Pentax_K10D.jpg", b"camera/../../outside/Pentax_K10D.jpg", str(PASSWD).encode(),
                    b"camera/Nikon_D70.jpg\0.png"):
            await app.db.write(lambda c: c.execute(
                "UPDATE files SET path = ? WHERE id = (SELECT primary_file_id FROM photos WHERE uid = ?)", (bad, uid)))
            r = await client.get(f"/api/v1/photos/{uid}/original", headers=h)
            assert r.status == 403, (bad, r.status)
            assert b"\xff\xd8" not in await r.read() and PASSWD.read_bytes()[:32] not in await r.read()


DOTDOT_PATHS = [
    "/api/v1/photos/..%2F..%2F..%2Fetc%2Fpasswd/original",
    "/api/v1/photos/%2e%2e/original",
    "/api/v1/photos/0123456789abcdef/files/..%2F..%2Fsecret.key",
    "/api/v1/t/..%2F..%2Fshoebox.db/tile_224",
    "/api/v1/t/0123456789abcdef/..%2F..%2F..%2Fsecret.key",
    "/api/v1/t/faces/..%2F..%2Fsecret.key/crop",
    "/api/v1/folders?path=../..",
    "/api/v1/folders?path=camera/../../outside",
    "/api/v1/folders?path=%2Fetc",
    "/api/v1/s/..%2F..%2Fetc%2Fpasswd/photos/x/original",
]


async def test_dotdot_in_any_path_parameter_reaches_nothing(layout: Layout) -> None:
    lay = layout
    async with api(make_config(lay.library, lay.data, **settings())) as (app, client):
        h = await admin_client(app, client)
        await app.index_once()
        uid = (await photo_ids(app))["Nikon_D70.jpg"]
        for path in DOTDOT_PATHS + [f"/api/v1/photos/{uid}/files/..%2F..%2F..%2Fetc%2Fpasswd"]:
            r = await client.get(path, headers=h, allow_redirects=False)
            body = await r.read()
            assert 400 <= r.status < 500, (path, r.status)
            for secret in lay.secrets():
                assert secret not in body, path
        for folder in ("../outside", "camera/../..", "/etc"):
            r = await client.post("/api/v1/index/start", json={"path": folder}, headers=h)
            assert r.status == 400, (folder, r.status)


async def test_an_allowed_outside_folder_is_followed_but_never_the_data_folder(layout: Layout) -> None:
    lay = layout
    lay.link("links/out_file.jpg", lay.outside / "Pentax_K10D.jpg")
    lay.link("links/out_dir", lay.outside / "folder")
    lay.link("links/passwd.jpg", PASSWD)
    lay.link("links/key.jpg", lay.data / "secret.key")
    config = make_config(lay.library, lay.data, **settings(index__allowed_link_targets=f"{lay.outside}:{lay.data}"))
    async with api(config) as (app, client):
        h = await admin_client(app, client)
        await app.index_once()
        names = await photo_ids(app)
        assert {"out_file.jpg", "Sony_HDR-HC3.jpg"} <= set(names), names
        r = await client.get(f"/api/v1/photos/{names['out_file.jpg']}/original", headers=h)
        assert r.status == 200 and await r.read() == (lay.outside / "Pentax_K10D.jpg").read_bytes()
        errors = await errors_by_path(app)
        assert "leads outside the library" in errors["links/passwd.jpg"]
        assert "data folder" in errors["links/key.jpg"]  # even when listed: the data folder is never a library


def test_the_gate_reads_the_file_it_checked_even_if_the_name_changes_right_after(layout: Layout) -> None:
    """The window between the check and the read: a pinned path keeps reading the checked file."""
    lay = layout
    gate = Gate(lay.library, protected=[lay.data], scratch=lay.data / "pins")
    original = (lay.library / "camera/Nikon_D70.jpg").read_bytes()
    with gate.pinned(b"camera/Nikon_D70.jpg") as pinned:
        assert pinned.name == "Nikon_D70.jpg"  # named like the original, for tools that look at names
        lay.link("camera/Nikon_D70.jpg", PASSWD)  # swapped after the check
        assert pinned.read_bytes() == original
    assert not any((lay.data / "pins").iterdir())  # nothing left behind
    with pytest.raises(OutsideLibrary):
        gate.open(b"camera/Nikon_D70.jpg")
    with pytest.raises(OutsideLibrary):
        gate.open(b"camera/../../outside/Pentax_K10D.jpg")
    os.mkfifo(lay.library / "camera" / "fifo.jpg")  # a FIFO cannot hang a worker
    with pytest.raises(OSError):
        gate.open(b"camera/fifo.jpg")

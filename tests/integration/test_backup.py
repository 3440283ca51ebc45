"""Backups (issue 13, point 5): `shoebox backup` while `shoebox serve` indexes, `shoebox restore`
into an empty data folder and everything a user made is back; damaged and newer backups refused
without touching anything; `keep` removes only the oldest Shoebox backups; the copy taken before a
migration; the schedule while serving."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import stat
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Iterator

import pytest

from daemon.backup.make import BackupOptions, make_backup, pre_migration_backup, prune
from daemon.backup.manifest import MANIFEST, BackupError, Manifest
from daemon.backup.restore import DataFolderBusy, restore
from daemon.backup.schedule import next_run
from daemon.cli import main as shoebox_main
from daemon.store.db import _split_sql, migrations
from tests.conftest import copy_sample
from tests.integration.api_support import (PASSWORD, SAMPLE_PHOTOS, Daemon, api, create_admin, events_of,
                                           http_json)
from tests.integration.support import free_port, make_config, shoebox
from tests.waiting import wait_until, wait_until_async

SHIPPED = len(migrations())


def backup_of(data: Path, dest: Path, **kw: object) -> Path:
    dest.mkdir(exist_ok=True)
    return make_backup(db_path=data / "shoebox.db", data=data, destination=dest, config_file=None,
                       library=None, **kw).path  # type: ignore[arg-type]


def reseal(backup: Path, name: str) -> None:
    """Recompute one file's checksum in the manifest (a backup that is sound but changed)."""
    doc = json.loads((backup / MANIFEST).read_text())
    data = (backup / name).read_bytes()
    doc["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (backup / MANIFEST).write_text(json.dumps(doc))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- what a backup holds ------------------------------------------------------------------------------


def test_a_backup_holds_the_database_secrets_keys_and_config_with_checksums(copy: tuple[Path, Path], tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    library, data = copy
    (data / "secret.key").write_text("ab" * 32)
    (data / "tls").mkdir()
    (data / "tls" / "ca.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\nfake\n")
    (data / "tls" / "ca.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\nfake\n")
    config = tmp_path / "shoebox.toml"
    config.write_text(f'library = "{library}"\ndata = "{data}"\n')
    dest = tmp_path / "usb"
    dest.mkdir()

    assert shoebox_main(["backup", str(dest), "--config", str(config)]) == 0
    [backup] = [p for p in dest.iterdir()]
    assert capsys.readouterr().out.strip() == str(backup)
    assert backup.name.startswith("shoebox-backup-")
    manifest = Manifest.read(backup)
    assert set(manifest.files) == {"data/shoebox.db", "data/secret.key", "data/tls/ca.key", "data/tls/ca.crt",
                                   "config/shoebox.toml"}
    assert manifest.schema_version == SHIPPED and manifest.shoebox_version and manifest.host and manifest.created
    assert manifest.config_file == str(config)
    for name, entry in manifest.files.items():
        assert hashlib.sha256((backup / name).read_bytes()).hexdigest() == entry["sha256"], name
        assert mode(backup / name) == 0o600, name
    assert mode(backup) == 0o700
    # thumbnails, places and run-time files are not in it; the copy is a self-contained database
    assert not (backup / "thumbs").exists() and not (backup / "data" / "places.db").exists()
    with sqlite3.connect(backup / "data" / "shoebox.db") as conn:
        assert conn.execute("SELECT count(*) FROM photos").fetchone()[0] == len(SAMPLE_PHOTOS)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()
    assert shoebox_main(["restore", str(backup), "--check", "--data", str(tmp_path / "unused")]) == 0
    assert "sound: Shoebox" in capsys.readouterr().out and not (tmp_path / "unused").exists()

    # --thumbnails and --originals add them, originals under their library paths, unchanged
    assert shoebox_main(["backup", str(dest), "--config", str(config), "--thumbnails", "--originals"]) == 0
    full = sorted(dest.iterdir())[-1]
    files = Manifest.read(full).files
    assert any(n.startswith("thumbs/") for n in files)
    originals = sorted(n for n in files if n.startswith("originals/"))
    assert originals == sorted(f"originals/{p.relative_to(library).as_posix()}" for p in library.rglob("*") if p.is_file())
    assert (full / originals[0]).read_bytes() == (library / originals[0].removeprefix("originals/")).read_bytes()


def test_no_destination_or_a_missing_one_is_refused(copy: tuple[Path, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    library, data = copy
    assert shoebox_main(["backup", "--library", str(library), "--data", str(data)]) == 7
    assert "no backup folder" in capsys.readouterr().err
    gone = tmp_path / "unplugged-usb" / "backups"
    assert shoebox_main(["backup", str(gone), "--library", str(library), "--data", str(data)]) == 7
    assert "does not exist" in capsys.readouterr().err and not gone.exists()
    if os.geteuid() != 0:  # root may write anywhere: a read-only folder refuses only others
        locked = tmp_path / "read-only"
        locked.mkdir(mode=0o500)
        assert shoebox_main(["backup", str(locked), "--library", str(library), "--data", str(data)]) == 7
        assert "the backup failed and was removed" in capsys.readouterr().err and list(locked.iterdir()) == []


# -- restore: refusals that touch nothing -----------------------------------------------------------


def test_a_corrupt_backup_is_refused_with_the_file_named_and_nothing_touched(
        copy: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    library, data = copy
    (data / "secret.key").write_text("cd" * 32)
    backup = backup_of(data, tmp_path / "usb")
    target = tmp_path / "new-data"
    target.mkdir()

    blob = bytearray((backup / "data" / "shoebox.db").read_bytes())
    blob[len(blob) // 2] ^= 0x01  # one flipped bit
    (backup / "data" / "shoebox.db").write_bytes(bytes(blob))
    code = shoebox_main(["restore", str(backup), "--library", str(library), "--data", str(target)])
    err = capsys.readouterr().err
    assert code == 7 and "data/shoebox.db does not match its checksum" in err and "nothing was changed" in err
    assert list(target.iterdir()) == []

    (backup / "data" / "shoebox.db").unlink()
    assert shoebox_main(["restore", str(backup), "--library", str(library), "--data", str(target)]) == 7
    assert "data/shoebox.db is missing" in capsys.readouterr().err
    assert list(target.iterdir()) == []

    # a manifest that points outside the backup is refused before anything is read
    doc = json.loads((backup / MANIFEST).read_text())
    doc["files"]["data/../../etc/passwd"] = {"sha256": "0" * 64, "size": 1}
    (backup / MANIFEST).write_text(json.dumps(doc))
    with pytest.raises(BackupError, match="outside the backup"):
        restore(backup, target, shipped=SHIPPED)


def test_a_backup_from_a_newer_schema_is_refused(copy: tuple[Path, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    library, data = copy
    backup = backup_of(data, tmp_path / "usb")
    with sqlite3.connect(backup / "data" / "shoebox.db") as conn:
        conn.execute(f"PRAGMA user_version = {SHIPPED + 1}")
    conn.close()
    reseal(backup, "data/shoebox.db")
    doc = json.loads((backup / MANIFEST).read_text())
    doc["schema_version"], doc["shoebox_version"] = SHIPPED + 1, "9.0.0"
    (backup / MANIFEST).write_text(json.dumps(doc))
    target = tmp_path / "new-data"

    code = shoebox_main(["restore", str(backup), "--library", str(library), "--data", str(target)])
    err = capsys.readouterr().err
    assert code == 7
    assert f"made by a newer Shoebox (9.0.0, database schema {SHIPPED + 1})" in err and "upgrade Shoebox" in err
    assert not (target / "shoebox.db").exists()


async def test_restore_refuses_a_running_daemons_folder_and_an_index_it_would_replace(
        copy: tuple[Path, Path], tmp_path: Path) -> None:
    library, data = copy
    backup = backup_of(data, tmp_path / "usb")
    async with api(make_config(library, data)):
        with pytest.raises(DataFolderBusy, match="is using"):
            await asyncio.to_thread(restore, backup, data, shipped=SHIPPED)
    # stopped, but it holds a library index: refused unless --replace, which moves it aside
    before = (data / "shoebox.db").read_bytes()
    with pytest.raises(BackupError, match="already holds a library index"):
        restore(backup, data, shipped=SHIPPED)
    assert (data / "shoebox.db").read_bytes() == before
    result = restore(backup, data, shipped=SHIPPED, replace=True)
    assert result.replaced_to is not None and (result.replaced_to / "shoebox.db").read_bytes() == before
    assert mode(data / "shoebox.db") == 0o600


def test_restore_brings_back_missing_originals_and_leaves_the_others_alone(copy: tuple[Path, Path],
                                                                         tmp_path: Path) -> None:
    library, data = copy
    dest = tmp_path / "usb"
    dest.mkdir()
    backup = make_backup(db_path=data / "shoebox.db", data=data, destination=dest, config_file=None,
                         library=library, options=BackupOptions(originals=True)).path
    files = sorted(p for p in library.rglob("*") if p.is_file())
    lost, changed = files[0], files[1]
    original = lost.read_bytes()
    lost.unlink()
    changed.write_bytes(b"the user's newer version")
    result = restore(backup, tmp_path / "new-data", shipped=SHIPPED, library=library, originals=True)
    assert lost.read_bytes() == original and changed.read_bytes() == b"the user's newer version"
    assert (result.originals_copied, result.originals_kept) == (1, len(files) - 1)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another user needs root")
def test_restored_as_root_into_the_services_folder_the_files_are_the_services(copy: tuple[Path, Path],
                                                                              tmp_path: Path) -> None:
    """`sudo shoebox restore` into /var/lib/shoebox: the daemon (user shoebox) must be able to read them."""
    library, data = copy
    (data / "tls").mkdir()
    (data / "tls" / "ca.key").write_text("key")
    backup = backup_of(data, tmp_path / "usb", options=BackupOptions(thumbnails=True))
    service = tmp_path / "var-lib-shoebox"
    service.mkdir(mode=0o700)
    os.chown(service, 4321, 4321)
    restore(backup, service, shipped=SHIPPED)
    for path in [service / "shoebox.db", service / "shoebox.lock", service / "tls", service / "tls" / "ca.key", service / "thumbs",
                 *(service / "thumbs").rglob("*")]:
        assert (path.stat().st_uid, path.stat().st_gid) == (4321, 4321), path


# -- keep N ---------------------------------------------------------------------------------------------


def test_keep_removes_only_the_oldest_shoebox_backups_of_this_library(copy: tuple[Path, Path], tmp_path: Path) -> None:
    library, data = copy
    dest = tmp_path / "usb"
    made = [backup_of(data, dest) for _ in range(4)]
    instance = Manifest.read(made[0]).instance
    # what must survive: a user's folder, look-alikes without a valid manifest, a file, another
    # Shoebox's backup on the same disk
    (dest / "holiday photos").mkdir()
    (dest / "holiday photos" / "a.jpg").write_bytes(b"x")
    (dest / "shoebox-backup-20000101T000000Z").mkdir()
    (dest / "shoebox-backup-20000102T000000Z").mkdir()
    (dest / "shoebox-backup-20000102T000000Z" / MANIFEST).write_text("{not json")
    (dest / "shoebox-backup-20000103T000000Z").write_text("a file")
    other = dest / "shoebox-backup-20000104T000000Z"
    shutil.copytree(made[0], other)
    doc = json.loads((other / MANIFEST).read_text())
    doc["instance"], doc["created"] = "another-box", "2000-01-04T00:00:00+00:00"
    (other / MANIFEST).write_text(json.dumps(doc))
    before = set(dest.iterdir())

    removed = prune(dest, 2, instance=instance)
    assert removed == made[:2]
    assert set(dest.iterdir()) == before - set(made[:2])
    assert prune(dest, 2, instance=instance) == []


# -- before a migration ---------------------------------------------------------------------------------


def older_database(path: Path, version: int) -> None:
    """A database as a Shoebox with only the first `version` migrations left it."""
    conn = sqlite3.connect(path, isolation_level=None)
    for v, _, sql in migrations()[:version]:
        for statement in _split_sql(sql):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {v}")
    conn.execute("INSERT INTO meta (key, value) VALUES ('test.marker', ?)", (f"schema {version}",))
    conn.close()


async def test_an_older_database_is_copied_before_it_is_migrated(library: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    old = SHIPPED - 3
    older_database(data / "shoebox.db", old)
    with sqlite3.connect(data / "shoebox.db") as conn:
        schema = sorted(r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL"))
    conn.close()

    async with api(make_config(library, data)) as (app, _):
        assert app.db is not None and await app.db.scalar("PRAGMA user_version") == SHIPPED
    [saved] = list((data / "backups").iterdir())
    assert saved.name.startswith(f"pre-migration-{old}-")
    manifest = Manifest.read(saved)
    assert manifest.schema_version == old and manifest.kind == "pre-migration" and list(manifest.files) == ["data/shoebox.db"]
    manifest.verify(saved)
    with sqlite3.connect(saved / "data" / "shoebox.db") as conn:  # the database as it was, not migrated
        assert conn.execute("PRAGMA user_version").fetchone()[0] == old
        assert sorted(r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")) == schema
        assert conn.execute("SELECT value FROM meta WHERE key = 'test.marker'").fetchone()[0] == f"schema {old}"
    conn.close()
    assert mode(data / "backups") == 0o700

    # a current database (the next start) and a new one make no copy
    async with api(make_config(library, data)):
        pass
    fresh = tmp_path / "fresh"
    async with api(make_config(library, fresh)):
        pass
    assert len(list((data / "backups").iterdir())) == 1 and not (fresh / "backups").exists()

    # the last 3 are kept
    for n in range(4):
        older_database(tmp_path / f"old{n}.db", old - n)
        shutil.copy(tmp_path / f"old{n}.db", data / "shoebox.db")
        pre_migration_backup(data / "shoebox.db", data, SHIPPED)
    kept = sorted(p.name.split("-")[2] for p in (data / "backups").iterdir())
    assert kept == sorted(str(old - n) for n in (1, 2, 3))


# -- the schedule ----------------------------------------------------------------------------------------


def test_next_run_follows_the_schedule_and_makes_up_a_missed_night() -> None:
    at = datetime.fromisoformat
    now = at("2026-12-03 14:00")
    assert next_run("daily", 3, None, now) == at("2026-12-04 03:00")
    assert next_run("daily", 3, at("2026-12-03 03:00:40"), now) == at("2026-12-04 03:00")
    assert next_run("daily", 3, at("2026-12-04 03:00:40"), at("2026-12-04 03:01")) == at("2026-12-05 03:00")
    assert next_run("daily", 3, at("2026-11-20 03:00"), now) == at("2026-12-04 03:00")  # missed: next night
    assert next_run("daily", 20, at("2026-12-02 20:00"), now) == at("2026-12-03 20:00")
    assert next_run("weekly", 3, at("2026-12-01 03:00"), now) == at("2026-12-08 03:00")
    assert next_run("hourly", 3, None, now) == now
    assert next_run("hourly", 3, at("2026-12-03 13:30"), now) == at("2026-12-03 14:25")


async def test_scheduled_backups_run_while_serving_and_keep_the_newest(copy: tuple[Path, Path], tmp_path: Path) -> None:
    library, data = copy
    dest = tmp_path / "usb"
    dest.mkdir()
    config = make_config(library, data, backup__schedule="hourly", backup__destination=str(dest), backup__keep="1")
    async with api(config) as (app, _):
        app.start_background()
        assert app.backups is not None
        first = await wait_until_async(lambda: [p for p in dest.iterdir() if p.name.startswith("shoebox-")],
                                       30, what="the first scheduled backup")
        Manifest.read(first[0]).verify(first[0])
        await app.backups.run_once(prune_to=config["backup.keep"])  # as the next hour would
        [left] = [p for p in dest.iterdir() if p.name.startswith("shoebox-")]
        assert left != first[0] and not [p for p in dest.iterdir() if p.name.startswith(".")]


async def test_a_scheduled_backup_to_an_unplugged_disk_is_announced_and_creates_nothing(
        copy: tuple[Path, Path], tmp_path: Path) -> None:
    library, data = copy
    unplugged = tmp_path / "media" / "usb" / "shoebox-backups"
    config = make_config(library, data, backup__schedule="hourly", backup__destination=str(unplugged))
    async with api(config) as (app, _):
        async with events_of(app) as seen:
            app.start_background()
            assert app.backups is not None
            await wait_until_async(lambda: app.backups.last_error, 30, what="the scheduled backup to fail")
            await wait_until_async(lambda: [e for e in seen if e["type"] == "error"], 10, what="the error event")
        [event] = [e for e in seen if e["type"] == "error"]
        assert event["data"]["kind"] == "backup" and event["data"]["destination"] == str(unplugged)
        assert "does not exist" in event["data"]["error"]
        assert not unplugged.exists() and not (tmp_path / "media").exists()


def test_a_schedule_without_destination_is_a_configuration_error(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = shoebox_main(["config", "--data", str(tmp_path), "--backup-schedule", "daily"])
    assert code == 2 and "backup.destination is empty" in capsys.readouterr().err


# -- the whole story, with the real daemon ------------------------------------------------------------


@pytest.mark.slow
def test_backup_while_indexing_then_restore_into_an_empty_data_folder(samples: Path, tmp_path: Path) -> None:
    library, data, usb = tmp_path / "library", tmp_path / "data", tmp_path / "usb"
    usb.mkdir()
    config = tmp_path / "etc" / "shoebox.toml"  # the configuration in use (the daemon's come as flags)
    config.parent.mkdir()
    config.write_text("[search]\nmax_seconds = 5.0\n")
    for rel in SAMPLE_PHOTOS:
        copy_sample(samples, rel, library / "camera")
    for name in ("obama.jpg", "obama2.jpg"):
        copy_sample(samples, f"faces/{name}", library / "people")
    create_admin(library, data)

    with Daemon(library, data, "--tagging-enabled", "true", "--index-rescan-interval", "0") as d:
        token = d.login()["access_token"]

        def photos(base: str, tok: str) -> dict[str, dict]:
            status, body = http_json("GET", f"{base}/api/v1/photos?limit=500", token=tok)
            assert status == 200, body
            return {p["id"]: p for p in body["photos"]}

        def clusters() -> list[dict]:
            status, body = http_json("GET", f"{d.base}/api/v1/clusters", token=token)
            return body if status == 200 else []

        wait_until(lambda: len(photos(d.base, token)) == 7 and clusters(), 180, interval=0.3,
                   what="the library indexed and the faces clustered")
        by_name = {}
        for uid in photos(d.base, token):
            _, det = http_json("GET", f"{d.base}/api/v1/photos/{uid}", token=token)
            by_name[Path(det["files"][0]["path"]).name] = uid
        canon, nikon = by_name["Canon_40D.jpg"], by_name["Nikon_D70.jpg"]

        # what a user makes: an edit, an album, a person, an account, a share link
        status, _ = http_json("PATCH", f"{d.base}/api/v1/photos/{canon}",
                              {"title": "Harbour at dawn", "rating": 4, "keywords": ["boat"]}, token=token)
        assert status == 200
        status, album = http_json("POST", f"{d.base}/api/v1/albums", {"title": "Holiday", "photos": [canon, nikon]},
                                  token=token)
        assert status == 201, album
        status, named = http_json("POST", f"{d.base}/api/v1/clusters/{clusters()[0]['id']}/name",
                                  {"name": "Quentin Zephyr"}, token=token)
        assert status == 201, named
        status, _ = http_json("POST", f"{d.base}/api/v1/users", {"name": "bob", "role": "viewer", "password": PASSWORD},
                              token=token)
        assert status == 201
        status, share = http_json("POST", f"{d.base}/api/v1/shares", {"album": album["id"]}, token=token)
        assert status == 201, share

        def state(base: str, tok: str) -> dict:
            """What the user sees of all that, through the API."""
            out = {}
            for path in ("albums", "people", "users", "shares"):
                status, body = http_json("GET", f"{base}/api/v1/{path}", token=tok)
                assert status == 200, body
                out[path] = body
            out["album"] = http_json("GET", f"{base}/api/v1/albums/{album['id']}", token=tok)[1]
            out["canon"] = http_json("GET", f"{base}/api/v1/photos/{canon}", token=tok)[1]
            out["guest"] = http_json("GET", f"{base}/api/v1/s/{share['token']}")[1]
            return out

        made = state(d.base, token)
        assert made["canon"]["title"] == "Harbour at dawn" and [p["name"] for p in made["people"]] == ["Quentin Zephyr"]
        before_backup = photos(d.base, token)

        # more photos arrive: the daemon indexes them while the backup is taken
        for path in sorted((samples / "immich-test-assets").rglob("*.jpg"))[:16]:
            copy_sample(samples, str(path.relative_to(samples)), library / "incoming")
        assert http_json("POST", f"{d.base}/api/v1/index/start", {}, token=token)[0] == 202
        wait_until(lambda: http_json("GET", f"{d.base}/api/v1/status", token=token)[1]["indexing"], 30,
                   what="indexing to start")
        result = shoebox("backup", str(usb), "--library", str(library), "--data", str(data), "--config", str(config))
        still_indexing = http_json("GET", f"{d.base}/api/v1/status", token=token)[1]["indexing"]
        assert http_json("GET", f"{d.base}/api/v1/health")[0] == 200  # served throughout
        backup = Path(result.stdout.strip())
        assert Manifest.read(backup).files["data/shoebox.db"]
        # not into the folder of the running daemon
        busy = shoebox("restore", str(backup), "--replace", "--library", str(library), "--data", str(data),
                       "--config", str(config), check=False)
        assert busy.returncode == 3 and "stop it" in busy.stderr, busy.stderr
        wait_until(lambda: not http_json("GET", f"{d.base}/api/v1/status", token=token)[1]["indexing"], 180,
                   interval=0.3, what="the new photos indexed")
        everything = len(photos(d.base, token))
        assert everything > 7
        with sqlite3.connect(f"file:{backup / 'data' / 'shoebox.db'}?mode=ro", uri=True) as conn:
            in_backup = conn.execute("SELECT count(*) FROM photos").fetchone()[0]
        conn.close()
        # it was taken while the daemon was writing (here: 17 of 18 photos in it, indexing went on)
        assert still_indexing or in_backup < everything, "the backup did not overlap the indexing"
        assert in_backup >= 7

    # restore into an empty data folder and start a daemon on it
    data2 = tmp_path / "restored-data"
    out = shoebox("restore", str(backup), "--library", str(library), "--data", str(data2), "--config", str(config))
    assert "restored" in out.stdout
    # the configuration is written beside the one it was made with, never over it
    assert f"{config.parent / 'shoebox.toml.restored'}" in out.stdout
    assert (config.parent / "shoebox.toml.restored").read_text() == config.read_text()
    assert mode(data2) == 0o700 and mode(data2 / "shoebox.db") == 0o600 and mode(data2 / "secret.key") == 0o600
    with Daemon(library, data2, "--tagging-enabled", "true", "--index-rescan-interval", "0") as d2:
        # the old access token still works: the signing secret came back with the accounts
        back = state(d2.base, token)
        for key in ("albums", "people", "users", "album", "guest"):
            assert back[key] == made[key], key
        assert [s["id"] for s in back["shares"]] == [s["id"] for s in made["shares"]]
        for field in ("title", "rating", "keywords", "taken_at"):
            assert back["canon"][field] == made["canon"][field], field
        assert d2.login("bob")["access_token"]
        restored = photos(d2.base, token)
        assert set(before_backup) <= set(restored)  # every photo indexed before the backup, same ids
        # the files that came after it are simply indexed again: nothing lost, nothing twice
        wait_until(lambda: len(photos(d2.base, token)) == everything, 180, interval=0.3, what="the rescan")
        # thumbnails were not in the backup: they are made again when asked for
        thumb = restored[canon]["thumb_key"]
        tokens = d2.login()
        with urllib.request.urlopen(f"{d2.base}/api/v1/t/{thumb}/tile_224?t={tokens['thumb_token']}", timeout=30) as r:
            assert r.status == 200 and r.read()[:2] == b"\xff\xd8"


# -- S3-compatible storage (moto's S3 server on loopback) ------------------------------------------


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real S3-speaking HTTP server (moto in server mode) on a free loopback port, with a bucket;
    the settings and credentials as a user gives them (SHOEBOX_BACKUP_S3_*, AWS_* variables)."""
    import subprocess
    import sys

    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up() -> bool:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                    return True
            except OSError:
                assert proc.poll() is None, "moto server exited"
                return False

        wait_until(up, 60, interval=0.2, what="moto's S3 server")
        for name, value in {"SHOEBOX_BACKUP_S3_ENDPOINT": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="backups")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_backups_to_s3_keep_the_newest_and_restore_verified(copy: tuple[Path, Path], tmp_path: Path, s3_server: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import boto3

    from daemon.backup.s3 import S3Settings, list_s3_backups

    library, data = copy
    (data / "secret.key").write_text("ef" * 32)
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    # what must survive pruning: the user's own objects and an upload that never got its manifest
    s3.put_object(Bucket="backups", Key="shoebox/holiday.jpg", Body=b"x")
    s3.put_object(Bucket="backups", Key="shoebox/shoebox-backup-20000101T000000Z/data/shoebox.db", Body=b"x")
    config = tmp_path / "etc" / "shoebox.toml"
    config.parent.mkdir()
    config.write_text("[log]\nlevel = \"info\"\n")
    urls = []
    for _ in range(3):
        assert shoebox_main(["backup", "s3://backups/shoebox", "--keep", "2", "--library", str(library),
                             "--data", str(data), "--config", str(config)]) == 0
        urls.append(capsys.readouterr().out.strip())
    assert all(u.startswith("s3://backups/shoebox/shoebox-backup-") for u in urls)
    settings = S3Settings(endpoint=s3_server)
    assert [f"s3://backups/shoebox/{name}" for name, _ in list_s3_backups("s3://backups/shoebox", settings)] == urls[1:]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="backups")["Contents"]}
    assert {"shoebox/holiday.jpg", "shoebox/shoebox-backup-20000101T000000Z/data/shoebox.db"} <= keys
    assert not any(k.startswith(urls[0].removeprefix("s3://backups/") + "/") for k in keys)
    assert list((data / "backups").iterdir()) == []  # the upload's scratch folder is gone
    body = s3.get_object(Bucket="backups", Key=urls[-1].removeprefix("s3://backups/") + "/manifest.json")["Body"]
    assert set(json.loads(body.read())["files"]) == {"data/shoebox.db", "data/secret.key", "config/shoebox.toml"}

    # restore from S3 into an empty data folder: downloaded, verified, restored
    target = tmp_path / "restored"
    assert shoebox_main(["restore", urls[-1], "--library", str(library), "--data", str(target),
                         "--config", str(config)]) == 0
    assert (config.parent / "shoebox.toml.restored").read_text() == config.read_text()  # beside, not over
    assert (target / "secret.key").read_text() == "ef" * 32
    with sqlite3.connect(target / "shoebox.db") as conn:
        assert conn.execute("SELECT count(*) FROM photos").fetchone()[0] == len(SAMPLE_PHOTOS)
    conn.close()
    assert list((target / "backups").iterdir()) == []  # the download is gone

    # a damaged object is refused with its name, and nothing is restored
    key = urls[1].removeprefix("s3://backups/") + "/data/secret.key"
    s3.put_object(Bucket="backups", Key=key, Body=b"00" * 32)
    empty = tmp_path / "empty"
    capsys.readouterr()
    assert shoebox_main(["restore", urls[1], "--library", str(library), "--data", str(empty),
                         "--config", str(config)]) == 7
    assert "data/secret.key does not match its checksum" in capsys.readouterr().err
    assert [p.name for p in empty.iterdir()] == ["backups"] and list((empty / "backups").iterdir()) == []

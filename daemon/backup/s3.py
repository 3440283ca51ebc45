"""S3-compatible destinations: `s3://bucket/prefix` as `[backup] destination` or DEST/SRC.

Why build the backup locally first and then upload it: the manifest and its checksums are made
exactly as for a folder, and `shoebox restore` downloads a backup into a folder and verifies it
the same way, so there is one format and one verification. Each backup is the objects
`<prefix>/shoebox-backup-<time>/<file>`; `manifest.json` is uploaded last, so a backup whose upload
was cut off has no manifest and is never listed, restored or counted by `keep` (and never pruned
either: only backups with a valid manifest are removed).

Works with AWS S3 and S3-speaking servers (MinIO, Garage, a NAS) through `[backup] s3_endpoint`.
Credentials: `[backup] s3_access_key`/`s3_secret_key`, else boto3's usual sources
(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials). boto3 is imported only when used.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from daemon.backup.make import NAME, BackupOptions, BackupResult, make_backup, utc_stamp
from daemon.backup.manifest import MANIFEST, BackupError, Manifest, safe_relative

log = logging.getLogger(__name__)

SCHEME = "s3://"


def is_s3(destination: str | Path | None) -> bool:
    return destination is not None and str(destination).startswith(SCHEME)


@dataclass(frozen=True)
class S3Settings:
    endpoint: str = ""
    region: str = ""
    access_key: str = ""
    secret_key: str = ""

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> "S3Settings":
        return cls(endpoint=section["s3_endpoint"].strip(), region=section["s3_region"].strip(),
                   access_key=section["s3_access_key"].strip(), secret_key=section["s3_secret_key"])


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or "some/folder" (no slashes at the ends)

    @classmethod
    def parse(cls, url: str) -> "S3Location":
        rest = str(url)[len(SCHEME):]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise BackupError(f"{url!r} names no bucket: write s3://BUCKET/FOLDER")
        return cls(bucket, prefix.strip("/"))

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def url(self, *parts: str) -> str:
        return SCHEME + "/".join(p for p in (self.bucket, self.prefix, *parts) if p)


def client(settings: S3Settings) -> Any:
    try:
        import boto3
    except ImportError:  # pragma: no cover - boto3 is a dependency
        raise BackupError("S3 destinations need the boto3 package") from None
    kwargs: dict[str, Any] = {}
    if settings.endpoint:
        kwargs["endpoint_url"] = settings.endpoint
    if settings.region:
        kwargs["region_name"] = settings.region
    elif settings.endpoint:
        kwargs["region_name"] = "us-east-1"  # most S3-compatible servers take any region
    if settings.access_key:
        kwargs["aws_access_key_id"] = settings.access_key
        kwargs["aws_secret_access_key"] = settings.secret_key
    return boto3.client("s3", **kwargs)


SCRATCH_PREFIX = ".s3-"
STALE_SCRATCH_S = 24 * 3600


def scratch_folder(data: Path) -> Path:
    """<data>/backups: never itself backed up, never moved aside by a restore. Scratch folders a
    killed upload or download left there over a day ago are removed on the way."""
    folder = Path(data) / "backups"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for entry in folder.iterdir():
        try:
            if entry.name.startswith(SCRATCH_PREFIX) and not entry.is_symlink() and entry.is_dir() \
                    and time.time() - entry.stat().st_mtime > STALE_SCRATCH_S:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue
    return folder


def _wrap(what: str, exc: Exception) -> BackupError:
    return BackupError(f"{what}: {exc}")


def make_s3_backup(*, url: str, settings: S3Settings, db_path: Path, data: Path, config_file: Path | None,
                   library: Path | None, options: BackupOptions | None = None,
                   cancelled: Callable[[], bool] = lambda: False) -> BackupResult:
    """Make a backup in a private scratch folder in <data>/backups, upload it (manifest last),
    remove the scratch folder. The result's `path` is the folder it was built in (gone by then);
    `url` is where it is."""
    from botocore.exceptions import BotoCoreError, ClientError

    location = S3Location.parse(url)
    s3 = client(settings)
    taken = set(_names(s3, location))
    name, n = f"shoebox-backup-{utc_stamp()}", 1
    while (f"{name}-{n}" if n > 1 else name) in taken:  # never over another backup's objects
        n += 1
    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX + "upload-", dir=scratch_folder(data)))
    try:
        result = make_backup(db_path=db_path, data=data, destination=scratch, config_file=config_file,
                             library=library, options=options, cancelled=cancelled,
                             name=f"{name}-{n}" if n > 1 else name)
        name = result.path.name
        try:
            for rel in sorted(result.manifest.files):
                if cancelled():
                    raise BackupError("the backup was cancelled")
                s3.upload_file(str(result.path / rel), location.bucket, location.key(name, rel))
            s3.upload_file(str(result.path / MANIFEST), location.bucket, location.key(name, MANIFEST))
        except (BotoCoreError, ClientError) as exc:
            raise _wrap(f"uploading the backup to {location.url(name)} failed", exc) from None
        result.url = location.url(name)
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _names(s3: Any, location: S3Location) -> list[str]:
    """The "folder" names directly under the location's prefix."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=location.bucket, Prefix=location.key("") + ("/" if location.prefix else ""), Delimiter="/")
        return [cp["Prefix"].rstrip("/").rsplit("/", 1)[-1] for page in pages for cp in page.get("CommonPrefixes", [])]
    except (BotoCoreError, ClientError) as exc:
        raise _wrap(f"listing {location.url()} failed", exc) from None


def list_s3_backups(url: str, settings: S3Settings, *, instance: str | None | bool = False) -> list[tuple[str, Manifest]]:
    """The finished backups under `url`, oldest first, as (name, manifest): those named like one
    whose manifest.json reads as one (and, unless `instance` is False, of that library)."""
    from botocore.exceptions import BotoCoreError, ClientError

    location = S3Location.parse(url)
    s3 = client(settings)
    found = []
    try:
        for name in _names(s3, location):
            if not NAME.match(name):
                continue
            try:
                body = s3.get_object(Bucket=location.bucket, Key=location.key(name, MANIFEST))["Body"].read()
                manifest = Manifest.from_dict(json.loads(body), f"{location.url(name)}/{MANIFEST}")
            except (ClientError, BackupError, ValueError):
                continue
            if instance is not False and manifest.instance != instance:
                continue
            found.append((name, manifest))
    except (BotoCoreError, ClientError) as exc:
        raise _wrap(f"listing {url} failed", exc) from None
    found.sort(key=lambda pair: (pair[1].created, pair[0]))
    return found


def prune_s3(url: str, settings: S3Settings, keep: int, *, instance: str | None | bool = False) -> list[str]:
    """Delete all but the `keep` newest backups (of `instance`) under `url`: only backups with a
    valid manifest, and only the objects their manifest lists (the manifest last)."""
    from botocore.exceptions import BotoCoreError, ClientError

    location = S3Location.parse(url)
    s3 = client(settings)
    backups = list_s3_backups(url, settings, instance=instance)
    removed = []
    try:
        for name, manifest in backups[:max(0, len(backups) - keep)]:
            keys = [location.key(name, rel) for rel in manifest.files] + [location.key(name, MANIFEST)]
            for start in range(0, len(keys), 1000):
                s3.delete_objects(Bucket=location.bucket,
                                  Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})
            removed.append(location.url(name))
            log.info("removed the old backup %s", location.url(name))
    except (BotoCoreError, ClientError) as exc:
        raise _wrap(f"removing old backups from {url} failed", exc) from None
    return removed


def download(url: str, settings: S3Settings, into: Path) -> Path:
    """Download the backup at `url` (s3://bucket/prefix/shoebox-backup-...) into a new folder in
    `into`/backups (the data folder); the caller verifies it (daemon.backup.restore.check) like any backup folder."""
    from botocore.exceptions import BotoCoreError, ClientError

    location = S3Location.parse(url)
    name = location.prefix.rsplit("/", 1)[-1]
    s3 = client(settings)
    folder = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX + "restore-", dir=scratch_folder(into))) / name
    folder.mkdir(mode=0o700)
    try:
        try:
            s3.download_file(location.bucket, location.key(MANIFEST), str(folder / MANIFEST))
        except ClientError as exc:
            raise BackupError(f"{url} is not a Shoebox backup: its {MANIFEST} cannot be read ({exc})") from None
        manifest = Manifest.read(folder)
        for rel in sorted(manifest.files):
            target = folder.joinpath(*safe_relative(rel).parts)
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                s3.download_file(location.bucket, location.key(rel), str(target))
            except ClientError as exc:
                raise BackupError(f"the backup is damaged: {rel} cannot be downloaded from {url} ({exc})") from None
    except (BotoCoreError, ClientError) as exc:
        shutil.rmtree(folder.parent, ignore_errors=True)
        raise _wrap(f"downloading {url} failed", exc) from None
    except BaseException:
        shutil.rmtree(folder.parent, ignore_errors=True)
        raise
    return folder

"""The backup manifest: what a backup holds, from which Shoebox, and each file's SHA-256.

Why checksums of every file: a backup sits for months on a USB disk that may be pulled out
mid-write or rot; a restore must find that out before it replaces anything, and name the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

MANIFEST = "manifest.json"
FORMAT = "shoebox-backup"
FORMAT_VERSION = 1
#: A finished backup's folder name; the time is UTC, so names sort by age.
NAME = re.compile(r"^shoebox-backup-(\d{8}T\d{6}Z)(-\d+)?$")
PRE_MIGRATION = re.compile(r"^pre-migration-(\d+)-(\d{8}T\d{6}Z)(-\d+)?$")
#: The top folders a backup may hold files in (anything else in a manifest is refused).
PARTS = ("data", "config", "thumbs", "originals")
CHUNK = 1 << 20


class BackupError(Exception):
    """A backup cannot be made or used; the message says which file and why."""


def copy_hashing(src: BinaryIO, dest: Path, mode: int = 0o600) -> tuple[str, int]:
    """Write `src` to a new file `dest` (mode 0600 from its first byte), flushed to disk;
    returns (sha256 hex, size). One pass: the checksum is of the bytes written."""
    digest = hashlib.sha256()
    size = 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), size


def sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def safe_relative(name: str) -> PurePosixPath:
    """A manifest path as a relative path inside one of PARTS; anything else (absolute, `..`, an
    unknown top folder) is refused, so a doctored manifest cannot make a restore write elsewhere."""
    rel = PurePosixPath(name)
    if rel.is_absolute() or not rel.parts or ".." in rel.parts or rel.parts[0] not in PARTS or len(rel.parts) < 2:
        raise BackupError(f"the manifest names a file outside the backup: {name!r}")
    return rel


@dataclass
class Manifest:
    """A parsed manifest.json (see `as_dict` for the fields)."""

    shoebox_version: str
    schema_version: int
    created: str
    host: str
    instance: str | None
    files: dict[str, dict[str, Any]]
    config_file: str | None = None
    data_dir: str | None = None
    library: str | None = None
    kind: str = "full"  # "full" (shoebox backup) or "pre-migration"

    def as_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": self.kind,
                "shoebox_version": self.shoebox_version, "schema_version": self.schema_version,
                "created": self.created, "host": self.host, "instance": self.instance,
                "config_file": self.config_file, "data_dir": self.data_dir, "library": self.library,
                "files": self.files}

    def write(self, folder: Path) -> None:
        path = folder / MANIFEST
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self.as_dict(), fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())

    @classmethod
    def read(cls, folder: Path) -> "Manifest":
        """The manifest of the backup in `folder`; BackupError when there is none or it is not one."""
        path = Path(folder) / MANIFEST
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BackupError(f"{folder} is not a Shoebox backup: it has no {MANIFEST}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BackupError(f"{path} cannot be read: {exc}") from None
        return cls.from_dict(doc, str(path))

    @classmethod
    def from_dict(cls, doc: Any, path: str) -> "Manifest":
        """A manifest from its parsed JSON (`path`: where it came from, for the messages)."""
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise BackupError(f"{path} is not a Shoebox backup manifest")
        if doc.get("format_version") != FORMAT_VERSION:
            raise BackupError(f"{path} has backup format {doc.get('format_version')!r}; this Shoebox reads "
                              f"format {FORMAT_VERSION}: restore it with the Shoebox that made it")
        try:
            files = doc["files"]
            if not isinstance(files, dict) or not all(
                    isinstance(v, dict) and isinstance(v.get("sha256"), str) and isinstance(v.get("size"), int)
                    for v in files.values()):
                raise TypeError("files")
            return cls(shoebox_version=str(doc["shoebox_version"]), schema_version=int(doc["schema_version"]),
                       created=str(doc["created"]), host=str(doc.get("host") or ""), instance=doc.get("instance"),
                       files=files, config_file=doc.get("config_file"), data_dir=doc.get("data_dir"),
                       library=doc.get("library"), kind=str(doc.get("kind") or "full"))
        except (KeyError, TypeError, ValueError) as exc:
            raise BackupError(f"{path} is missing or has a bad field: {exc}") from None

    def verify(self, folder: Path) -> None:
        """Check every listed file's size and SHA-256; BackupError naming the first that differs."""
        for name, entry in sorted(self.files.items()):
            rel = safe_relative(name)
            path = Path(folder).joinpath(*rel.parts)
            try:
                digest, size = sha256_file(path)
            except FileNotFoundError:
                raise BackupError(f"the backup is damaged: {name} is missing") from None
            except OSError as exc:
                raise BackupError(f"the backup is damaged: {name} cannot be read: {exc}") from None
            if size != entry["size"] or digest != entry["sha256"]:
                raise BackupError(f"the backup is damaged: {name} does not match its checksum in {MANIFEST} "
                                  f"({size} bytes, sha256 {digest[:12]}…; expected {entry['size']} bytes, "
                                  f"{entry['sha256'][:12]}…)")

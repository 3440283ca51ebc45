"""Bringing a backup back: verify all of it first, then restore into a stopped data folder.

Order matters: every checksum is checked and the schema version compared before anything in the
data folder is touched, so a damaged backup or one from a newer Shoebox leaves the data folder as
it was. The data folder's lock (the one `shoebox serve` holds, daemon.app.App._take_lock) is held
for the whole restore: no daemon can be running, and none can start halfway through.

The configuration file is never written over the one in use (it may be /etc/shoebox/shoebox.toml,
edited since): it is written beside the file it was backed up from, as `<name>.restored`, or into
the data folder when that folder cannot be written, and the path is reported.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from daemon.system import datalock
from daemon.backup.manifest import BackupError, Manifest, copy_hashing, safe_relative
from daemon.backup.make import DB_NAME, copy_times, utc_stamp
from daemon.system.durable import fsync_dir, temp_name
from daemon.system.permissions import private_dir

log = logging.getLogger(__name__)


class RestoreRefused(BackupError):
    """The backup is sound but cannot be restored here (newer schema, a data folder in use)."""


class DataFolderBusy(RestoreRefused):
    """A Shoebox process holds the data folder."""


@dataclass
class RestoreResult:
    manifest: Manifest
    restored: list[str] = field(default_factory=list)  # data-folder paths written
    config_written: Path | None = None
    replaced_to: Path | None = None  # where the data folder's previous files were moved
    originals_copied: int = 0
    originals_kept: int = 0  # already in the library (left untouched)


def check(src: Path, shipped: int) -> Manifest:
    """Read and verify a backup: BackupError when damaged, RestoreRefused when it is from a newer
    schema than this Shoebox's `shipped` migrations."""
    manifest = Manifest.read(src)
    if f"data/{DB_NAME}" not in manifest.files:
        raise BackupError(f"{src} holds no database (data/{DB_NAME} is not in its manifest)")
    manifest.verify(src)
    if manifest.schema_version > shipped:
        raise RestoreRefused(
            f"this backup was made by a newer Shoebox ({manifest.shoebox_version}, database schema "
            f"{manifest.schema_version}); this Shoebox knows schema {shipped}: upgrade Shoebox, then restore")
    return manifest


def _lock(data: Path) -> int:
    try:
        return datalock.take(data)
    except datalock.DataDirBusy as exc:
        raise DataFolderBusy(f"{exc}: stop it (systemctl stop shoebox) before restoring") from None


class _Owner:
    """Who the restored files belong to: run as root (`sudo shoebox restore`) into the service's
    data folder, they are given to the folder's owner (the `shoebox` user), or the daemon could not
    read its own 0600 files. Otherwise they are simply the caller's."""

    def __init__(self, data: Path) -> None:
        try:
            st = data.stat()
        except FileNotFoundError:
            self.ids = None
            return
        self.ids = (st.st_uid, st.st_gid) if os.geteuid() == 0 and st.st_uid != 0 else None

    def give(self, path: Path) -> None:
        if self.ids is not None:
            os.chown(path, *self.ids, follow_symlinks=False)


def _write(src: Path, dest: Path, owner: _Owner, mode: int = 0o600) -> None:
    """Copy src to dest atomically (temporary name, then rename), mode `mode` from the first byte."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(dest)
    try:
        with open(src, "rb") as fh:
            copy_hashing(fh, tmp, mode)
        copy_times(src, tmp, mode)
        owner.give(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dest.parent)


def _config_target(manifest: Manifest, name: str, data: Path) -> Path:
    """Where the backed-up configuration goes: beside where it was, else in the data folder; never
    over an existing file."""
    places = []
    if manifest.config_file:
        places.append(Path(manifest.config_file).parent)
    places.append(data)
    for folder in places:
        if folder.is_dir() and os.access(folder, os.W_OK):
            candidate, n = folder / f"{name}.restored", 1
            while candidate.exists():
                n += 1
                candidate = folder / f"{name}.restored-{n}"
            return candidate
    raise BackupError(f"no folder to write the restored configuration into ({', '.join(map(str, places))})")


def restore(src: Path, data: Path, *, shipped: int, library: Path | None = None, replace: bool = False,
            originals: bool = False) -> RestoreResult:
    """Restore the backup folder `src` into the data folder `data` (see the module docstring).
    A data folder that already holds a database is refused unless `replace`: then its database,
    secrets and keys are moved aside into <data>/backups/before-restore-<time>/ (nothing deleted)."""
    src = Path(src)
    manifest = check(src, shipped)
    private_dir(data)
    owner = _Owner(data)
    fd = _lock(data)
    owner.give(data / "shoebox.lock")  # or the daemon could not take it next time
    try:
        result = RestoreResult(manifest=manifest)
        existing = data / DB_NAME
        data_entries = [PurePosixPath(n) for n in manifest.files if n.startswith("data/")]
        if existing.exists():
            if not replace:
                raise RestoreRefused(f"{data} already holds a library index ({existing}); restore into an empty "
                                     "data folder, or add --replace to move the current one aside first")
            aside = data / "backups" / f"before-restore-{utc_stamp()}"
            aside.mkdir(parents=True, mode=0o700)
            moving = {DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal"}
            moving |= {e.parts[1] for e in data_entries}  # what the restore writes: secret.key, tls, ...
            for name in sorted(moving):
                if (data / name).exists():
                    os.rename(data / name, aside / name)
            result.replaced_to = aside
        for name in sorted(manifest.files):
            rel = safe_relative(name)
            part, inner = rel.parts[0], Path(*rel.parts[1:])
            source = src.joinpath(*rel.parts)
            if part == "data":
                target = data / inner
                for parent in reversed(inner.parents[:-1]):
                    private_dir(data / parent)
                    owner.give(data / parent)
                _write(source, target, owner)
                result.restored.append(str(target))
            elif part == "thumbs":
                target = data / "thumbs" / inner
                for parent in reversed((Path("thumbs") / inner).parents[:-1]):
                    if not (data / parent).is_dir():
                        (data / parent).mkdir(mode=0o700)
                        owner.give(data / parent)
                _write(source, target, owner)
            elif part == "config":
                target = _config_target(manifest, inner.name, data)
                _write(source, target, _Owner(target.parent))
                result.config_written = target
            elif part == "originals" and originals and library is not None:
                target = library / inner
                if target.exists():
                    result.originals_kept += 1
                    continue
                _write(source, target, _Owner(library), mode=0o644)
                result.originals_copied += 1
        for stale in (f"{DB_NAME}-wal", f"{DB_NAME}-shm"):  # never pair the restored file with another's WAL
            (data / stale).unlink(missing_ok=True)
        (data / "shoebox.running").unlink(missing_ok=True)
        fsync_dir(data)
        return result
    finally:
        os.close(fd)


def describe(manifest: Manifest) -> str:
    size = sum(int(e["size"]) for e in manifest.files.values())
    return (f"Shoebox {manifest.shoebox_version}, schema {manifest.schema_version}, made {manifest.created} on "
            f"{manifest.host or '?'}, {len(manifest.files)} files, {size / 1e6:.1f} MB")


__all__ = ["check", "restore", "describe", "RestoreRefused", "DataFolderBusy", "RestoreResult"]

"""Getting files into the library: the synchronous steps that uploads and imports share.

The library is otherwise read-only to Shoebox; uploads (into `[import] upload_folder`) and
imports (into the dated `[import] layout` folders) are the only two ways it writes there, and
both go through this module so they follow the same rules:

- a file is recognised by its extension (daemon.library.formats) AND by its first bytes, so a
  renamed text file never lands in the library as "photo.jpg";
- every file is written under a hidden temporary name in its final folder, flushed to disk and
  then linked into place under a name that does not exist yet, so a crash leaves either nothing
  or a whole file, never half a photo, and no existing file is ever overwritten (hidden names are
  skipped by the scanner, so a half-written file is never indexed);
- a source file is deleted (import with move) only after its copy was read back from disk and
  matched in size and SHA-1.

Every function here is synchronous and runs in a worker thread; none touches asyncio.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
import re
import secrets
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from daemon.library.exiftool import ExifTool
from daemon.library.formats import PRIMARY_RANK, Kind, kind_of
from daemon.library.metadata import read_metadata
from daemon.library.scanner import sidecar_targets, stem_of
from daemon.system.durable import fsync_dir

CHUNK = 1 << 20
TEMP_PREFIX = ".shoebox-"
TEMP_SUFFIX = ".part"
STALE_TEMP_S = 24 * 3600  # a temporary file this old belongs to no running upload or import
MAX_NAME_BYTES = 200  # well under every file system's 255 bytes, leaving room for a suffix
LAYOUT_FIELDS = ("year", "month", "day")


class ImportRefused(Exception):
    """A folder that cannot be imported (missing, inside the library or the data folder...)."""


class NotMedia(Exception):
    """A file whose name or content is not a photo or video Shoebox knows."""


class CopyFailed(Exception):
    """A copy could not be made or did not match its source; the source is untouched."""


class Cancelled(Exception):
    """The import was stopped (shutdown) while this file was being copied."""


# -- recognising media ---------------------------------------------------------------------------------

def _is_bmff(head: bytes) -> bool:  # HEIC, AVIF, MP4, MOV, 3GP, CR3: an ISO base media file
    return len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def _is_tiff(head: bytes) -> bool:  # TIFF and the TIFF-based RAW formats (DNG, CR2, NEF, ARW, PEF)
    return head[:4] in (b"II*\x00", b"MM\x00*")


_MAGIC: dict[str, Callable[[bytes], bool]] = {
    ".jpg": lambda h: h[:3] == b"\xff\xd8\xff", ".jpeg": lambda h: h[:3] == b"\xff\xd8\xff",
    ".jpe": lambda h: h[:3] == b"\xff\xd8\xff",
    ".png": lambda h: h[:8] == b"\x89PNG\r\n\x1a\n",
    ".gif": lambda h: h[:6] in (b"GIF87a", b"GIF89a"),
    ".webp": lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP",
    ".bmp": lambda h: h[:2] == b"BM",
    ".tif": _is_tiff, ".tiff": _is_tiff,
    ".heic": _is_bmff, ".heif": _is_bmff, ".hif": _is_bmff, ".avif": _is_bmff,
    ".jxl": lambda h: h[:2] == b"\xff\x0a" or h[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n",
    ".dng": _is_tiff, ".cr2": _is_tiff, ".nef": _is_tiff, ".arw": _is_tiff, ".pef": _is_tiff,
    ".cr3": _is_bmff,
    ".raf": lambda h: h[:15] == b"FUJIFILMCCD-RAW",
    ".rw2": lambda h: h[:4] == b"IIU\x00",
    ".orf": lambda h: h[:4] in (b"IIRO", b"IIRS", b"MMOR"),
    ".mp4": _is_bmff, ".mov": _is_bmff, ".m4v": _is_bmff, ".3gp": _is_bmff,
    ".avi": lambda h: h[:4] == b"RIFF" and h[8:12] == b"AVI ",
    ".mkv": lambda h: h[:4] == b"\x1a\x45\xdf\xa3",
}
SNIFF_BYTES = 16


def media_kind(name: str) -> Kind:
    """The kind of a media file by its name; NotMedia for sidecars and unknown types."""
    kind = kind_of(name)
    if kind is None or kind is Kind.SIDECAR:
        ext = Path(name).suffix.lower() or "(no extension)"
        raise NotMedia(f"{name!r}: {ext} is not a photo or video type Shoebox knows")
    return kind


def check_content(name: str, head: bytes) -> None:
    """NotMedia unless the first bytes are plausible for the name's extension."""
    ext = Path(name).suffix.lower()
    test = _MAGIC.get(ext)
    if test is not None and not test(head[:SNIFF_BYTES]):
        raise NotMedia(f"{name!r}: the content is not a {ext[1:].upper()} file (its first bytes do not match)")


# -- names and folders ---------------------------------------------------------------------------------

_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')


def sanitize_name(name: str, fallback: str = "upload") -> str:
    """A safe file name from whatever a client sent: the last path component only, unicode
    NFC-normalised (a Mac sends decomposed accents), no control or reserved characters, not hidden
    (no leading dots), at most MAX_NAME_BYTES bytes with the extension kept."""
    text = unicodedata.normalize("NFC", str(name)).replace("\\", "/")
    text = text.rsplit("/", 1)[-1]
    text = _UNSAFE.sub("_", text)
    text = " ".join(text.split())  # collapse whitespace, trim both ends
    text = text.lstrip(". ").rstrip(". ")
    stem, dot, ext = text.rpartition(".")
    if not dot:
        stem, ext = text, ""
    ext = ext[:16]
    if not stem.strip("_ "):
        stem = fallback
    while len((stem + (("." + ext) if ext else "")).encode()) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return stem + ("." + ext if ext else "")


def check_relative_folder(text: str, what: str) -> str:
    """A folder relative to the library: no absolute path, no '..', no hidden part. ValueError."""
    parts = [p for p in str(text).replace("\\", "/").split("/") if p not in ("", ".")]
    if str(text).startswith("/") or any(p == ".." or p.startswith(".") or "\x00" in p for p in parts):
        raise ValueError(f"{what} must be a folder inside the library without '..' or hidden parts: {text!r}")
    return "/".join(parts)


def check_layout(layout: str) -> str:
    """The dated folder pattern, e.g. '{year}/{month}'; ValueError naming what is wrong."""
    fields = re.findall(r"{([^{}]*)}", layout)
    unknown = [f for f in fields if f not in LAYOUT_FIELDS]
    if unknown:
        raise ValueError(f"[import] layout {layout!r}: unknown field(s) {', '.join(unknown)}; "
                         f"known: {', '.join('{' + f + '}' for f in LAYOUT_FIELDS)}")
    return check_relative_folder(layout, "[import] layout")


def dated_folder(layout: str, when: dt.datetime) -> str:
    return layout.format(year=f"{when.year:04d}", month=f"{when.month:02d}", day=f"{when.day:02d}")


def dated_base(when: dt.datetime, sha1: str) -> str:
    """'20190705_153012_1a2b3c4d': sortable by time, unique by content."""
    return f"{when:%Y%m%d_%H%M%S}_{sha1[:8]}"


def taken_time(path: Path, exiftool: ExifTool | None, sidecars: Iterable[Path] = (),
               mtime: float | None = None) -> tuple[dt.datetime, str]:
    """When the photo was taken (local wall clock) and the source of that date, by the indexer's
    own metadata reader, so the folder a file lands in agrees with the date Shoebox shows."""
    try:
        meta = read_metadata(path, exiftool=exiftool, sidecars=list(sidecars), mtime=mtime)
        text = meta.get("taken_at")
        if text:
            source = meta.source("taken_at")
            return dt.datetime.fromisoformat(str(text)[:19]), source.name.lower() if source else "unknown"
    except (OSError, ValueError):
        pass
    stamp = mtime if mtime is not None else os.stat(path).st_mtime
    return dt.datetime.fromtimestamp(stamp), "file time"


def with_suffix_free(folder: Path, name: str, taken: set[str] | None = None) -> str:
    """`name`, or `stem-1.ext`, `stem-2.ext`... : the first that exists neither in `folder` nor
    in `taken` (names already promised to other files of the same run)."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    candidate, n = name, 0
    while os.path.lexists(folder / candidate) or (taken is not None and candidate in taken):
        n += 1
        candidate = f"{stem}-{n}" + (f".{ext}" if ext else "")
    return candidate


# -- writing files safely ------------------------------------------------------------------------------

def temp_path(folder: Path, tag: str, ext: str = "") -> Path:
    """A hidden temporary name in `folder` (hidden: the scanner and the watcher never index it).
    The extension is kept so the metadata reader knows what the file is."""
    return folder / f"{TEMP_PREFIX}{tag}-{secrets.token_hex(8)}{TEMP_SUFFIX}{ext.lower()}"


def remove_stale_temps(folder: Path, max_age_s: float = STALE_TEMP_S) -> int:
    """Delete temporary files of uploads or imports that a crash left behind in `folder`."""
    removed = 0
    cutoff = time.time() - max_age_s
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if entry.name.startswith(TEMP_PREFIX) and TEMP_SUFFIX + "." in entry.name + ".":
            try:
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                pass
    return removed


def place(temp: Path, folder: Path, name: str) -> Path:
    """Give a finished temporary file its final name in the same folder, never replacing a file
    that exists: a hard link fails if the name is taken (then the next free suffix is tried).
    File systems without hard links (FAT, exFAT on a USB drive) fall back to a checked rename."""
    for _ in range(1000):
        target = folder / with_suffix_free(folder, name)
        try:
            os.link(temp, target)
        except FileExistsError:
            continue  # someone took the name between the check and the link
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV):
                raise
            if os.path.lexists(target):
                continue
            os.rename(temp, target)
            fsync_dir(folder)
            return target
        os.unlink(temp)
        fsync_dir(folder)
        return target
    raise CopyFailed(f"no free name for {name} in {folder}")


class HashingWriter:
    """A temporary file being written and hashed chunk by chunk: what an upload streams into.
    Only `write` is called per chunk, so memory stays at one chunk whatever the file's size."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sha1 = hashlib.sha1()
        self.size = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: BinaryIO | None = open(path, "xb")

    def write(self, data: bytes) -> None:
        assert self._fh is not None
        self._fh.write(data)
        self.sha1.update(data)
        self.size += len(data)

    def finish(self) -> str:
        """Flush to disk; the SHA-1 of everything written."""
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
        return self.sha1.hexdigest()

    def discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def sha1_of(path: Path, cancel: threading.Event | None = None) -> tuple[str, int]:
    """(SHA-1, size) of a file, read in chunks."""
    digest = hashlib.sha1()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            if cancel is not None and cancel.is_set():
                raise Cancelled("stopped")
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def copy_verified(source: Path, folder: Path, name: str, *, sha1: str, size: int, reread: bool,
                  cancel: threading.Event | None = None) -> Path:
    """Copy `source` to `folder/name` (or the next free suffix) through a hidden temporary file.

    The bytes read are hashed while copying and must match `sha1`/`size` (what the source had
    when it was checked for duplicates: a file changed since is not imported half-old). With
    `reread` the copy is read back from disk after fsync and hashed again, which is what a move
    requires before it may delete the source. The source's times are kept (the file time is the
    last estimate of a date). CopyFailed or Cancelled otherwise; the source is never touched."""
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(folder)
    temp = temp_path(folder, "import", Path(name).suffix)
    writer = HashingWriter(temp)
    try:
        st = os.stat(source)
        with open(source, "rb") as fh:
            while chunk := fh.read(CHUNK):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("stopped")
                writer.write(chunk)
        copied = writer.finish()
        if copied != sha1 or writer.size != size:
            raise CopyFailed(f"{source} changed while it was being imported (size or content differs)")
        os.utime(temp, ns=(st.st_atime_ns, st.st_mtime_ns))
        if reread:
            again, again_size = sha1_of(temp, cancel)
            if again != sha1 or again_size != size:
                raise CopyFailed(f"the copy of {source} read back from disk does not match it")
        return place(temp, folder, name)
    except OSError as exc:
        raise CopyFailed(f"cannot copy {source}: {exc.strerror or exc}") from None
    finally:
        writer.discard()  # a no-op once the file was linked into place and the temp name removed


def check_source(source: Path, *, library: Path, data: Path) -> Path:
    """The resolved folder to import from; ImportRefused when it is missing, not a folder, or
    overlaps the library or the data folder (importing the library into itself would copy every
    photo again; the data folder holds thumbnails, not photos)."""
    text = str(source)
    if not text or "\x00" in text:
        raise ImportRefused("no folder to import from was given")
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise ImportRefused(f"the folder to import must be an absolute path on the server: {text!r}")
    path = path.resolve()
    if not path.is_dir():
        raise ImportRefused(f"{path} does not exist or is not a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ImportRefused(f"{path} is not readable by the Shoebox user")
    for other, what in ((library.resolve(), "the library"), (data.resolve(), "Shoebox's data folder")):
        if path == other or other in path.parents:
            raise ImportRefused(f"{path} is inside {what} ({other}); import from a folder outside it")
        if path in other.parents:
            raise ImportRefused(f"{path} contains {what} ({other}); import from a folder outside it")
    return path


# -- planning an import --------------------------------------------------------------------------------

@dataclass
class SourceFile:
    path: Path
    kind: Kind
    size: int
    mtime: float


@dataclass
class Group:
    """Files that must stay together under one new name: a photo with its RAW, a Live Photo's
    still and video (same base name in one folder), and the sidecars that belong to them."""

    folder: Path
    stem: str
    media: list[SourceFile] = field(default_factory=list)
    sidecars: list[SourceFile] = field(default_factory=list)

    def primary(self, candidates: list[SourceFile] | None = None) -> SourceFile:
        files = self.media if candidates is None else candidates
        return min(files, key=lambda f: (PRIMARY_RANK[f.kind], f.path.name))


@dataclass
class Plan:
    groups: list[Group] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # not media (first IGNORED_LISTED listed)
    ignored_count: int = 0
    orphans: list[SourceFile] = field(default_factory=list)  # sidecars without their photo
    errors: list[tuple[str, str]] = field(default_factory=list)  # unreadable folders

    @property
    def files(self) -> int:
        return sum(len(g.media) + len(g.sidecars) for g in self.groups) + len(self.orphans)

    @property
    def bytes(self) -> int:
        return sum(f.size for g in self.groups for f in [*g.media, *g.sidecars])


IGNORED_LISTED = 50


def plan_import(source: Path, cancel: threading.Event | None = None) -> Plan:
    """Walk `source` (hidden files and folders skipped, folder links not followed) and group what
    must travel together. A sidecar goes with the media file whose name it extends
    (photo.jpg.xmp, photo.xmp, photo.jpg.json), by the scanner's own rule."""
    plan = Plan()

    def ignore(path: Path) -> None:
        plan.ignored_count += 1
        if len(plan.ignored) < IGNORED_LISTED:
            plan.ignored.append(str(path))

    def onerror(exc: OSError) -> None:
        plan.errors.append((str(exc.filename), exc.strerror or str(exc)))

    for dirpath, dirnames, filenames in os.walk(source, onerror=onerror, followlinks=False):
        if cancel is not None and cancel.is_set():
            raise Cancelled("stopped")
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        folder = Path(dirpath)
        groups: dict[str, list[Group]] = {}
        sidecars: list[SourceFile] = []
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = folder / name
            kind = kind_of(name)
            if kind is None:
                ignore(path)
                continue
            try:
                st = path.stat()
            except OSError as exc:
                plan.errors.append((str(path), exc.strerror or str(exc)))
                continue
            if not os.path.isfile(path):
                ignore(path)
                continue
            found = SourceFile(path, kind, st.st_size, st.st_mtime)
            if kind is Kind.SIDECAR:
                sidecars.append(found)
                continue
            stem = stem_of(os.fsencode(name))
            ext = path.suffix.lower()
            # two files that would get the same new name (IMG_1.jpg and IMG_1.JPG) travel apart
            for group in groups.setdefault(stem, []):
                if all(m.path.suffix.lower() != ext for m in group.media):
                    group.media.append(found)
                    break
            else:
                groups[stem].append(Group(folder, stem, [found]))
        for sidecar in sidecars:
            full, _ = sidecar_targets(os.fsencode(sidecar.path.name))
            owner = None
            for group in groups.get(full, []) + groups.get(stem_of(os.fsencode(full)), []):
                if group.stem == full or any(m.path.name.lower() == full for m in group.media):
                    owner = group
                    break
            if owner is None:
                plan.orphans.append(sidecar)
            else:
                owner.sidecars.append(sidecar)
        for stem in sorted(groups):
            plan.groups.extend(groups[stem])
    return plan


def new_sidecar_name(sidecar: Path, group: Group, new_names: dict[Path, str], base: str) -> str | None:
    """The sidecar's name beside the renamed media: photo.jpg.xmp → <new photo name>.xmp,
    photo.xmp → <base>.xmp; None when none of the media it extends was imported."""
    name = sidecar.name
    for media, new_name in new_names.items():
        if name.lower().startswith(media.name.lower() + "."):
            return new_name + name[len(media.name):]
    if new_names and name.lower().startswith(group.stem + "."):
        return base + name[len(group.stem):]
    return None


"""One photo's or video's metadata, read once per index pass: every field with the source it came from.

The reader picks the cheapest path that serves the file:
- images Pillow opens lazily (JPEG, TIFF, PNG, WebP, HEIC): Pillow's EXIF/GPS/IPTC plus the XMP
  packet Pillow exposes, read from the headers only (never a pixel: see exif.exif_of); ExifTool only for what needs MakerNotes (a lens the EXIF lacks, Apple's
  Live Photo id), so a plain JPEG never pays for a round trip to Perl;
- RAW files, JPEG XL (whose Pillow plugin decodes the whole image to open it) and images Pillow
  cannot open (AVIF, broken headers, bombs): one full ExifTool read;
- videos: ffprobe plus ExifTool's QuickTime keys (videoprobe.py).
Then sidecars, the date in the file name, and the file time as the last estimate.

Per field the value of the highest Source wins (estimate < file name < Takeout JSON < EXIF <
embedded XMP < XMP sidecar); within one source, the reader's own order (DateTimeOriginal before
CreateDate before IPTC...). The caller merges with values already stored by the same rule, so a
manual edit survives.

Dates: taken_at is the local wall clock where the photo was taken. taken_offset (minutes east of
UTC) comes from the winning date itself, else from any other date tag of the same second that
carries a zone (OffsetTimeOriginal, IPTC, XMP), else from the GPS time when the difference is a
whole quarter-hour. UTC-only instants (QuickTime, GPS time, Takeout, file time) are shown in the
server's zone with its offset, so the instant stays exact. Whenever the offset is known,
taken_at_utc ("YYYY-MM-DDTHH:MM:SSZ") is given too.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pillow_heif
from PIL import Image

from daemon.library import exiftags
from daemon.library.exif import read_image
from daemon.library.exiftool import ExifTool, ExifToolError
from daemon.library.filedates import stamp_from_name
from daemon.library.formats import Kind, kind_of, mime_of
from daemon.library.headers import is_jxl
from daemon.library.metavalues import Found, Stamp, iso_value, stamp_from_utc
from daemon.library.sidecars import read_sidecar
from daemon.library.sources import Source
from daemon.library.videoprobe import read_video
from daemon.library.xmp import XmpError, read_xmp

pillow_heif.register_heif_opener()

_GPS_RANK = 9  # GPS time as a date: the last resort among the camera's own tags
_QUARTER = 15  # minutes: zones are whole quarter hours
_GPS_TOLERANCE = dt.timedelta(minutes=5)  # a GPS fix a little older than the shot still tells the zone


@dataclass
class Metadata:
    fields: dict[str, tuple[Any, Source]]  # field name -> (value, source)
    warnings: list[str]  # readable problems found (bad EXIF block, exiftool timeout...)

    def get(self, name: str, default: Any = None) -> Any:
        entry = self.fields.get(name)
        return default if entry is None else entry[0]

    def source(self, name: str) -> Source | None:
        entry = self.fields.get(name)
        return None if entry is None else entry[1]


def read_metadata(path: Path, *, exiftool: ExifTool | None, sidecars: Sequence[Path] = (),
                  mtime: float | None = None, ffprobe: str = "ffprobe") -> Metadata:
    """Everything known about `path`; never raises for bad metadata (a warning per problem).

    Raises OSError only when the file itself cannot be opened (missing, no permission).
    """
    path = Path(path)
    found = Found()
    warnings: list[str] = []
    mime = mime_of(path)
    kind = kind_of(path)

    if kind is Kind.VIDEO:
        os.stat(path)  # a missing file is the caller's error, not a warning
        video = read_video(path, exiftool=exiftool, ffprobe_executable=ffprobe)
        for name, value, rank in video.values:
            found.add(name, value, Source.EXIF, rank)
        warnings += video.warnings
    elif kind is Kind.RAW:
        os.stat(path)
        _read_with_exiftool(path, exiftool, found, warnings, why="RAW file")
    else:
        detected = _read_with_pillow(path, exiftool, found, warnings)
        if detected:
            mime = detected

    for sidecar in sidecars:
        result = read_sidecar(Path(sidecar), path)
        for name, value, rank in result.values:
            found.add(name, value, result.source, rank)
        warnings += result.warnings

    name_stamp = stamp_from_name(path.name)
    if name_stamp is not None:
        found.add("taken_at", name_stamp, Source.FILENAME)
    if found.get("taken_at") is None and found.get("_gps_utc") is None:
        if mtime is None:
            mtime = os.stat(path).st_mtime
        estimate = _stamp_from_epoch(mtime)
        if estimate is not None:
            found.add("taken_at", estimate, Source.ESTIMATE)

    fields = _resolve(found)
    fields["mime"] = (mime, Source.EXIF if mime != mime_of(path) else Source.ESTIMATE)
    return Metadata(fields, warnings)


def _read_with_pillow(path: Path, exiftool: ExifTool | None, found: Found, warnings: list[str]) -> str | None:
    """The cheap path; falls back to ExifTool for files Pillow cannot open. Returns the MIME type
    Pillow detected from the content."""
    with open(path, "rb") as fh:  # OSError here is the caller's: the file cannot be opened
        if is_jxl(fh.read(16)):
            # the JPEG XL plugin decodes every pixel inside Image.open; ExifTool reads the
            # metadata boxes without decoding anything
            _read_with_exiftool(path, exiftool, found, warnings, why="JPEG XL file")
            return None
        fh.seek(0)
        try:
            im = Image.open(fh)
        except Exception as exc:  # noqa: BLE001 - unknown format, truncated header, bomb check
            warnings.append(f"Pillow cannot read {path.name}: {exc}")
            _read_with_exiftool(path, exiftool, found, warnings, why="format Pillow cannot read")
            return None
        with im:
            read = read_image(im)
            detected = Image.MIME.get(im.format or "")
    for name, value, rank in read.values:
        found.add(name, value, Source.EXIF, rank)
    warnings += read.warnings
    if read.xmp:
        try:
            for name, value, rank in read_xmp(read.xmp).values:
                found.add(name, value, Source.XMP, rank)
        except XmpError as exc:
            warnings.append(f"embedded XMP: {exc}")

    make = str(found.get("make") or "").lower()
    wants_lens = read.has_maker_note and found.get("lens") is None
    if exiftool is not None and (make == "apple" or wants_lens):
        try:
            extra = exiftool.read(path, exiftags.EXTRA_TAGS, numeric=False)
        except ExifToolError as exc:
            warnings.append(str(exc))
        else:
            found.add("lens", exiftags.lens_from(extra), Source.EXIF, 1)
            found.add("content_identifier", exiftags.content_identifier_from(extra), Source.EXIF)
            found.add("iso", iso_value(extra.get("Composite:ISO")), Source.EXIF, 1)
    return detected


def _read_with_exiftool(path: Path, exiftool: ExifTool | None, found: Found, warnings: list[str], why: str) -> None:
    if exiftool is None:
        warnings.append(f"{why}: needs ExifTool, none given")
        return
    try:
        tags = exiftool.read(path)
    except ExifToolError as exc:
        warnings.append(str(exc))
        return
    error = tags.get("ExifTool:Error")
    if error:
        warnings.append(f"exiftool: {error}")
    warning = tags.get("ExifTool:Warning")
    if warning:
        warnings.append(f"exiftool: {warning}")
    for name, value, source, rank in exiftags.fields_from_exiftool(tags):
        found.add(name, value, source, rank)
    if found.get("lens") is None and any(k.endswith(("Lens", "LensType", "LensID")) for k in tags):
        try:
            extra = exiftool.read(path, exiftags.LENS_TAGS, numeric=False)
        except ExifToolError as exc:
            warnings.append(str(exc))
        else:
            found.add("lens", exiftags.lens_from(extra), Source.EXIF, 1)


def _stamp_from_epoch(seconds: float) -> Stamp | None:
    try:
        return stamp_from_utc(dt.datetime.fromtimestamp(seconds, dt.timezone.utc))
    except (OverflowError, OSError, ValueError):
        return None


def _resolve(found: Found) -> dict[str, tuple[Any, Source]]:
    """Turn the winning candidates into the output fields, deriving the date's zone."""
    gps_utc: dt.datetime | None = found.get("_gps_utc")
    if gps_utc is not None:
        stamp = stamp_from_utc(gps_utc)
        if stamp is not None:
            found.add("taken_at", stamp, Source.EXIF, _GPS_RANK)
    fields: dict[str, tuple[Any, Source]] = {}
    for name, (source, _rank, value) in found.best.items():
        if name.startswith("_") or name == "taken_at":
            continue
        fields[name] = (value, source)
    # a description that only repeats the camera's name says nothing about the photo
    camera = {str(found.get(n)).casefold() for n in ("make", "model") if found.get(n)}
    for name in ("title", "description"):
        if name in fields and str(fields[name][0]).casefold() in camera:
            del fields[name]

    entry = found.best.get("taken_at")
    if entry is None:
        return fields
    source, _rank, stamp = entry
    offset = stamp.offset
    if offset is None:
        offset = next((s.offset for s in found.stamps if s.offset is not None and not s.from_utc and s.same_second(stamp)), None)
    if offset is None and gps_utc is not None and source >= Source.EXIF:
        offset = _offset_from_gps(stamp, gps_utc)
    fields["taken_at"] = (stamp.text(), source)
    if offset is not None:
        fields["taken_offset"] = (offset, source)
        utc = Stamp(stamp.wall, offset).utc_text()
        if utc:
            fields["taken_at_utc"] = (utc, source)
    return fields


def _offset_from_gps(stamp: Stamp, gps_utc: dt.datetime) -> int | None:
    """The zone as local time minus GPS (UTC) time, if that is a whole quarter-hour within ±14 h."""
    diff = stamp.wall - gps_utc.replace(tzinfo=None, microsecond=0)
    quarters = round(diff.total_seconds() / (_QUARTER * 60))
    minutes = quarters * _QUARTER
    if abs(minutes) > 14 * 60:
        return None
    if abs(diff - dt.timedelta(minutes=minutes)) > _GPS_TOLERANCE:
        return None
    return minutes

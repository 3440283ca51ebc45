"""Sidecar files: XMP written by Lightroom/darktable/digiKam, and Google Takeout's .json.

A sidecar belongs to the media file whose name it extends (`photo.jpg.xmp`, `photo.xmp`,
`photo.jpg.json`). XMP sidecars are what an editor wrote after the fact (a corrected date, a
rating, keywords), so they rank above anything inside the file (Source.SIDECAR). Takeout JSON
holds what Google Photos knew; camera EXIF beats it (Source.JSON), it fills what EXIF lacks.

Takeout dates: `photoTakenTime.timestamp` is a UTC epoch without the zone of the place. As for
every UTC-only instant (QuickTime, GPS time) we keep the instant exact: taken_at is shown in the
server's zone with that zone's offset as taken_offset, and taken_at_utc holds the UTC time.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.library.formats import kind_of
from daemon.library.metavalues import clean_caption, clean_position, stamp_from_utc, to_float
from daemon.library.sources import Source
from daemon.library.xmp import XmpError, read_xmp

TAKEOUT_NAME_LIMIT = 51  # Takeout cuts a sidecar's whole name ("….json") to 51 characters
_MAX_SIDECAR = 8 * 1024 * 1024


@dataclass
class SidecarRead:
    """Fields of one sidecar as (field, value, rank), its source, and readable problems."""

    source: Source
    values: list[tuple[str, Any, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def possible_sidecar_names(media_name: str) -> list[str]:
    """Every sidecar name that may belong to `media_name` (no I/O), XMP first."""
    stem, dot, ext = media_name.rpartition(".")
    if not dot:
        stem, ext = media_name, ""
    names = [f"{media_name}.xmp", f"{media_name}.XMP"]
    if ext:
        names += [f"{stem}.xmp", f"{stem}.XMP"]
    json_bases = [media_name, f"{media_name}.supplemental-metadata"]
    # Takeout names a duplicate "photo(1).jpg" but its sidecar "photo.jpg(1).json"
    if ext and stem.endswith(")") and "(" in stem:
        base, _, counter = stem.rpartition("(")
        if counter[:-1].isdigit():
            json_bases.append(f"{base}.{ext}({counter}")
    # an edited copy shares the original's sidecar
    if stem.endswith("-edited"):
        json_bases.append(f"{stem[:-len('-edited')]}.{ext}")
    for base in json_bases:
        names.append(f"{base}.json")
        truncated = f"{base[:TAKEOUT_NAME_LIMIT - len('.json')]}.json"
        if truncated not in names:
            names.append(truncated)
    seen: set[str] = set()
    return [n for n in names if not (n in seen or seen.add(n)) and n != media_name]


def sidecar_candidates(media_path: Path) -> list[Path]:
    """The sidecar files present next to `media_path` that belong to it, XMP first.

    On a case-insensitive file system `photo.xmp` and `photo.XMP` are the same file: listed once.
    """
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for name in possible_sidecar_names(media_path.name):
        candidate = media_path.with_name(name)
        try:
            st = candidate.stat()
        except OSError:
            continue
        if not candidate.is_file() or (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        found.append(candidate)
    return found


def read_sidecar(path: Path, media_path: Path | None = None) -> SidecarRead:
    """Read an .xmp or Takeout .json sidecar; problems become warnings, never exceptions."""
    if path.suffix.lower() == ".json":
        return read_takeout_json(path, media_path)
    return read_xmp_sidecar(path)


def _read_limited(path: Path, result: SidecarRead) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_SIDECAR + 1)
    except OSError as exc:
        result.warnings.append(f"cannot read sidecar {path.name}: {exc.strerror or exc}")
        return None
    if len(data) > _MAX_SIDECAR:
        result.warnings.append(f"sidecar {path.name} is larger than {_MAX_SIDECAR} bytes, ignored")
        return None
    return data


def read_xmp_sidecar(path: Path) -> SidecarRead:
    result = SidecarRead(Source.SIDECAR)
    data = _read_limited(path, result)
    if data is None:
        return result
    try:
        result.values = read_xmp(data).values
    except XmpError as exc:
        result.warnings.append(f"XMP sidecar {path.name}: {exc}")
    return result


def read_takeout_json(path: Path, media_path: Path | None = None) -> SidecarRead:
    result = SidecarRead(Source.JSON)
    data = _read_limited(path, result)
    if data is None:
        return result
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        result.warnings.append(f"JSON sidecar {path.name} is not valid JSON: {exc}")
        return result
    if not isinstance(doc, dict) or not ({"photoTakenTime", "creationTime", "geoData", "title"} & doc.keys()):
        result.warnings.append(f"JSON sidecar {path.name} is not Google Takeout metadata, ignored")
        return result
    add = result.values.append

    taken = _epoch(doc.get("photoTakenTime"))
    if taken is not None:
        stamp = stamp_from_utc(taken)
        if stamp is not None:
            add(("taken_at", stamp, 0))

    for rank, key in enumerate(("geoData", "geoDataExif")):
        geo = doc.get(key)
        if not isinstance(geo, dict):
            continue
        position = clean_position(to_float(geo.get("latitude")), to_float(geo.get("longitude")))
        if position is None:
            continue
        add(("lat", position[0], rank))
        add(("lng", position[1], rank))
        alt = to_float(geo.get("altitude"))
        if alt is not None and alt != 0:
            add(("alt", alt, rank))
        break

    title = clean_caption(doc.get("title"))
    # Takeout's "title" is usually just the file name: that is not a title a person gave
    if title is not None and not _is_file_name(title, media_path):
        add(("title", title, 0))
    description = clean_caption(doc.get("description"))
    if description is not None:
        add(("description", description, 0))
    return result


def _epoch(value: Any) -> dt.datetime | None:
    if not isinstance(value, dict):
        return None
    seconds = to_float(value.get("timestamp"))
    if seconds is None or seconds <= 0:
        return None
    try:
        return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _is_file_name(title: str, media_path: Path | None) -> bool:
    if media_path is not None and title.casefold() == media_path.name.casefold():
        return True
    return kind_of(title) is not None

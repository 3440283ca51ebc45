"""Turning raw tag values into the fixed field types of a photo's metadata.

Every reader (Pillow EXIF, XMP, ExifTool, ffprobe, sidecars) meets the same messy values: dates in
three syntaxes with or without zone, GPS as degree/minute triples or "51,30.5N" strings, numbers as
rationals with a zero denominator, descriptions that are only the camera's name. The rules live
here once, so a field means the same thing whichever reader found it. Every function returns None
for a value it cannot make sense of: a bad tag loses that tag, never the file.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from daemon.library.sources import Source

MIN_YEAR = 1826  # the oldest surviving photograph; anything earlier is a broken clock
# A camera clock a little ahead is common (time zones): allow up to one day in the future.
FUTURE_SLACK = dt.timedelta(days=1)

_DT_RE = re.compile(
    r"^\s*(\d{4})[:\-/.](\d{1,2})[:\-/.](\d{1,2})"          # date
    r"(?:[T\s]+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:[.,](\d+))?)?"  # time, optional seconds/subseconds
    r"\s*(Z|[+\-]\d{2}:?\d{2})?\s*$",                         # zone
    re.IGNORECASE,
)
_OFFSET_RE = re.compile(r"^\s*([+\-])(\d{1,2}):?(\d{2})\s*$")


@dataclass(frozen=True)
class Stamp:
    """A moment as a camera wrote it: the wall-clock time where it was taken, and the zone if known."""

    wall: dt.datetime  # naive, local wall-clock time
    offset: int | None = None  # minutes east of UTC, when the source says so
    millis: int | None = None  # subseconds, only when the source has them
    from_utc: bool = False  # the source only knew the UTC instant (QuickTime, GPS, Takeout)

    def text(self) -> str:
        """The taken_at field: "YYYY-MM-DDTHH:MM:SS", plus ".fff" when subseconds are known."""
        base = self.wall.replace(microsecond=0).isoformat(timespec="seconds")
        return base if self.millis is None else f"{base}.{self.millis:03d}"

    def utc_text(self) -> str | None:
        if self.offset is None:
            return None
        utc = self.wall - dt.timedelta(minutes=self.offset)
        return utc.replace(microsecond=0).isoformat(timespec="seconds") + "Z"

    def same_second(self, other: "Stamp") -> bool:
        return self.wall.replace(microsecond=0) == other.wall.replace(microsecond=0)


def plausible(wall: dt.datetime) -> bool:
    """Reject dates no camera took: before photography existed or more than a day ahead."""
    if wall.year < MIN_YEAR:
        return False
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return wall <= now + FUTURE_SLACK + dt.timedelta(hours=14)  # +14 h: the earliest zone


def parse_offset(value: Any) -> int | None:
    """"+02:00" / "-0530" / "Z" -> minutes east of UTC; None if unreadable or impossible."""
    if not isinstance(value, str):
        return None
    if value.strip().upper() == "Z":
        return 0
    m = _OFFSET_RE.match(value)
    if not m:
        return None
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    if minutes > 14 * 60 or int(m.group(3)) >= 60:
        return None
    return -minutes if m.group(1) == "-" else minutes


def parse_stamp(value: Any, *, subsec: Any = None, offset: Any = None, date_only_ok: bool = True) -> Stamp | None:
    """A date in EXIF ("2019:07:05 15:30:12"), XMP/ISO ("2019-07-05T15:30:12.5+02:00") or
    date-only form; `subsec`/`offset` are EXIF's separate SubSecTime and OffsetTime tags."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    value = value.strip("\x00 \t")
    m = _DT_RE.match(value)
    if not m:
        return None
    year, month, day, hour, minute, second, frac, zone = m.groups()
    if hour is None and not date_only_ok:
        return None
    try:
        wall = dt.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                           int(second or 0))
    except ValueError:  # 0000:00:00, month 13, Feb 30, hour 24...
        return None
    if not plausible(wall):
        return None
    millis = _millis(frac) if frac else _millis(subsec)
    off = parse_offset(zone) if zone else parse_offset(offset)
    return Stamp(wall, off, millis)


def _millis(value: Any) -> int | None:
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    digits = value.strip("\x00 ")
    if not digits.isdigit():
        return None
    return int((digits + "000")[:3])  # "17" is .170 s, "023460" is .023 s


def stamp_from_utc(utc: dt.datetime) -> Stamp | None:
    """A UTC-only instant (QuickTime CreateDate, GPS time, Takeout timestamp).

    The place's zone is unknown, so the wall clock is given in the server's local zone and the
    offset is that zone's offset at that instant: the instant stays exact (taken_at - offset is
    the true UTC time) and the shown time is what the owner's own clocks said.
    """
    if utc.tzinfo is None:
        utc = utc.replace(tzinfo=dt.timezone.utc)
    try:
        local = utc.astimezone()  # the server's zone, DST of that date
    except (OverflowError, OSError, ValueError):
        return None
    wall = local.replace(tzinfo=None)
    if not plausible(wall):
        return None
    delta = local.utcoffset() or dt.timedelta(0)
    millis = utc.microsecond // 1000 if utc.microsecond else None
    return Stamp(wall.replace(microsecond=0), int(delta.total_seconds() // 60), millis, from_utc=True)


def parse_utc(value: Any) -> dt.datetime | None:
    """A timestamp that is UTC by definition ("2019-07-05T13:30:12.000000Z", QuickTime dates)."""
    stamp = parse_stamp(value)
    if stamp is None:
        return None
    utc = stamp.wall - dt.timedelta(minutes=stamp.offset or 0)
    if stamp.millis is not None:
        utc = utc.replace(microsecond=stamp.millis * 1000)
    return utc.replace(tzinfo=dt.timezone.utc)


# -- numbers ---------------------------------------------------------------------------------------

def to_float(value: Any) -> float | None:
    """A finite float from an int, float, IFDRational, "28/10", "0.004" or a one-item list."""
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and all(isinstance(v, int) for v in value):  # (numerator, denominator)
            return None if value[1] == 0 else to_float(value[0] / value[1])
        return to_float(value[0]) if len(value) >= 1 else None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        text = value.strip("\x00 ")
        if "/" in text:
            num, _, den = text.partition("/")
            try:
                n, d = float(num), float(den)
            except ValueError:
                return None
            return None if d == 0 else to_float(n / d)
        try:
            value = float(text)
        except ValueError:
            return None
    try:
        number = float(value)  # IFDRational, Fraction, int, bool-free numbers
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def to_int(value: Any) -> int | None:
    number = to_float(value)
    if number is None or abs(number) > 2**53:
        return None
    return int(round(number))


def positive(value: float | None) -> float | None:
    return value if value is not None and value > 0 else None


def iso_value(value: Any) -> int | None:
    """ISO speed: EXIF may hold a list (several ISO values) or a string "160"."""
    iso = to_int(value)
    return iso if iso is not None and 0 < iso < 10_000_000 else None


def orientation_value(value: Any) -> int | None:
    number = to_int(value)
    return number if number is not None and 1 <= number <= 8 else None


def rating_value(value: Any, percent: Any = None) -> int | None:
    """xmp:Rating / EXIF Rating (-1 = rejected, 0..5), else RatingPercent mapped as Windows does."""
    rating = to_int(value)
    if rating is not None and -1 <= rating <= 5:
        return rating
    pct = to_int(percent)
    if pct is None or not 0 <= pct <= 100:
        return None
    for stars, floor in ((5, 99), (4, 75), (3, 50), (2, 25), (1, 1)):
        if pct >= floor:
            return stars
    return 0


def oriented_size(width: Any, height: Any, orientation: int | None) -> tuple[int, int] | None:
    """Pixel size as shown: orientations 5..8 turn the image a quarter, so they swap the sides."""
    w, h = to_int(width), to_int(height)
    if not w or not h or w <= 0 or h <= 0:
        return None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


# -- GPS -------------------------------------------------------------------------------------------

def dms_to_degrees(value: Any) -> float | None:
    """(deg, min, sec) rationals, a plain number, or an XMP "51,30.5N" / "51,30,15N" string."""
    if isinstance(value, (tuple, list)):
        parts = [to_float(v) for v in value]
        if not parts or any(p is None for p in parts):
            return None
        while len(parts) < 3:
            parts.append(0.0)
        deg, minutes, seconds = parts[:3]  # type: ignore[misc]
        return deg + minutes / 60 + seconds / 3600
    if isinstance(value, str):
        text = value.strip()
        ref = text[-1:].upper()
        if ref in ("N", "S", "E", "W"):
            body = text[:-1]
            pieces = [to_float(p) for p in body.split(",")]
            if not pieces or any(p is None for p in pieces):
                return None
            deg = sum(p / 60**i for i, p in enumerate(pieces))  # type: ignore[operator]
            return -deg if ref in ("S", "W") else deg
    return to_float(value)


def apply_ref(degrees: float | None, ref: Any, negative: str) -> float | None:
    """Apply GPSLatitudeRef/GPSLongitudeRef ("S"/"W" make it negative); EXIF stores magnitudes."""
    if degrees is None:
        return None
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    if isinstance(ref, str) and ref.strip("\x00 ").upper().startswith(negative):
        return -abs(degrees)
    return degrees


def clean_position(lat: float | None, lng: float | None) -> tuple[float, float] | None:
    """Drop the empty (0, 0) that many phones write without a fix, and impossible values."""
    if lat is None or lng is None:
        return None
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        return None
    if abs(lat) < 1e-7 and abs(lng) < 1e-7:
        return None
    return lat, lng


# -- text ------------------------------------------------------------------------------------------

# Descriptions cameras fill in by themselves; they say nothing about the photo.
_JUNK_TEXT = {
    "OLYMPUS DIGITAL CAMERA", "SONY DSC", "KODAK DIGITAL STILL CAMERA", "MINOLTA DIGITAL CAMERA",
    "KONICA MINOLTA DIGITAL CAMERA", "DIGITAL CAMERA", "SAMSUNG", "SAMSUNG DIGITAL CAMERA",
    "DEFAULT", "CAMERA", "DCIM", "PENTAX DIGITAL CAMERA", "SANYO DIGITAL CAMERA", "LEGRIA",
    "JENOPTIK DIGITAL CAMERA", "EXIF_PIC", "SCREENSHOT", "IMAGE", "PICTURE", "UNTITLED",
    "BINARY COMMENT", "CREATED WITH GIMP", "NIKON DIGITAL CAMERA", "HDRI",
}


def clean_caption(value: Any) -> str | None:
    """A title or description a person wrote: clean_text minus what cameras fill in by themselves."""
    text = clean_text(value)
    if text is None or text.upper() in _JUNK_TEXT:
        return None
    return text


def clean_text(value: Any) -> str | None:
    """Stripped text, or None for empty, whitespace-only, NUL-padded or binary placeholders."""
    if isinstance(value, (list, tuple)):
        value = value[0] if len(value) == 1 else None
    if isinstance(value, bytes):
        value = _decode_bytes(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", "").strip()
    if not text:
        return None
    if text.startswith("(Binary data") or text.startswith("base64:"):
        return None
    return text


def _decode_bytes(data: bytes) -> str:
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def xp_text(value: Any) -> str | None:
    """Windows XP tags (XPKeywords, XPTitle) are UTF-16LE bytes, as a tuple of ints in Pillow."""
    if isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value):
        try:
            value = bytes(value)
        except ValueError:
            return None
    if isinstance(value, bytes):
        value = value.decode("utf-16-le", "replace")
    return clean_caption(value)


def keyword_list(values: Iterable[Any]) -> list[str]:
    """Keywords de-duplicated case-insensitively, first spelling and order kept."""
    seen: set[str] = set()
    result: list[str] = []
    for value in values:
        text = clean_text(value)
        if text is None:
            continue
        key = text.casefold()
        if key not in seen:
            seen.add(key)
            result.append(text)
    return result


def split_keywords(value: Any) -> list[str]:
    """"a; b; c" (XP Keywords) or a list -> items."""
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if isinstance(value, str):
        return [part for part in re.split(r"[;]", value)]
    return []


# -- collecting candidates -------------------------------------------------------------------------

LIST_FIELDS = {"keywords"}


class Found:
    """Candidate values per field from all readers of one file.

    Per field the highest Source wins; within one source the candidate with the lowest rank wins
    (rank 0 = DateTimeOriginal, 1 = CreateDate...), so each reader states its own preference
    order. List fields (keywords) of the same source are joined.
    """

    def __init__(self) -> None:
        self.best: dict[str, tuple[Source, int, Any]] = {}
        self.stamps: list[Stamp] = []  # every date seen, to find the zone of the winning one

    def add(self, field: str, value: Any, source: Source, rank: int = 0) -> None:
        if value is None or value == [] or value == "":
            return
        if field == "taken_at":
            self.stamps.append(value)
        current = self.best.get(field)
        if field in LIST_FIELDS and current is not None and current[0] == source:
            self.best[field] = (source, min(rank, current[1]), keyword_list([*current[2], *value]))
            return
        if current is None or source > current[0] or (source == current[0] and rank < current[1]):
            if field in LIST_FIELDS:
                value = keyword_list(value)
                if not value:
                    return
            self.best[field] = (source, rank, value)

    def get(self, field: str) -> Any:
        entry = self.best.get(field)
        return None if entry is None else entry[2]

    def source_of(self, field: str) -> Source | None:
        entry = self.best.get(field)
        return None if entry is None else entry[0]

"""Core EXIF, GPS and IPTC of an image opened with Pillow: the cheap path, no ExifTool, no decode.

`Image.open` reads only the headers, so this costs a millisecond or two on a phone JPEG, against
tens of milliseconds for an ExifTool round trip. Every tag is converted on its own inside a
guard: real files carry rationals with a zero denominator, strings where numbers belong and
truncated IFDs, and one bad tag must lose only that tag.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from PIL import ExifTags, Image, IptcImagePlugin

from daemon.library.headers import read_png_metadata
from daemon.library.metavalues import (
    apply_ref,
    clean_caption,
    clean_position,
    clean_text,
    dms_to_degrees,
    iso_value,
    keyword_list,
    orientation_value,
    parse_stamp,
    positive,
    rating_value,
    split_keywords,
    to_float,
    to_int,
    xp_text,
)

Candidate = tuple[str, Any, int]  # (field, value, rank within the source)

# IFD0 / Exif IFD / GPS tag numbers (EXIF 2.32)
MAKE, MODEL, ORIENTATION, SOFTWARE, DESCRIPTION = 0x010F, 0x0110, 0x0112, 0x0131, 0x010E
RATING, RATING_PERCENT, XP_TITLE, XP_COMMENT, XP_KEYWORDS = 0x4746, 0x4749, 0x9C9B, 0x9C9C, 0x9C9E
DATE_ORIGINAL, DATE_DIGITIZED = 0x9003, 0x9004
OFFSET_ORIGINAL, OFFSET_DIGITIZED = 0x9011, 0x9012
SUBSEC_ORIGINAL, SUBSEC_DIGITIZED = 0x9291, 0x9292
ISO, EXPOSURE_TIME, F_NUMBER, FOCAL_LENGTH, FOCAL_35 = 0x8827, 0x829A, 0x829D, 0x920A, 0xA405
LENS_MODEL, MAKER_NOTE = 0xA434, 0x927C
GPS_LAT_REF, GPS_LAT, GPS_LNG_REF, GPS_LNG, GPS_ALT_REF, GPS_ALT = 1, 2, 3, 4, 5, 6
GPS_TIME, GPS_DATE = 7, 29


class PillowRead:
    """What the Pillow path found in one file."""

    def __init__(self) -> None:
        self.values: list[Candidate] = []
        self.warnings: list[str] = []
        self.has_maker_note = False
        self.xmp: bytes | None = None

    def add(self, field: str, value: Any, rank: int = 0) -> None:
        if value is not None:
            self.values.append((field, value, rank))

    def guard(self, what: str, func: Callable[[], Any]) -> Any:
        """Run one conversion; a failure becomes a warning and loses only this value."""
        try:
            return func()
        except Exception as exc:  # noqa: BLE001 - any broken tag must not cost the file
            self.warnings.append(f"unreadable {what}: {type(exc).__name__}: {exc}")
            return None


def exif_of(im: Image.Image) -> Image.Exif:
    """`im.getexif()` without decoding a pixel.

    Pillow's PNG reader decodes the WHOLE image when the file has no eXIf chunk before its image
    data, only to look for one after it (a 558 KiB PNG of 14000x14000 cost 570 MB that way). So
    for a PNG the metadata chunks are read here by seeking over the image data, put where Pillow
    would have put them, and Pillow's generic reader (which never loads) parses them.
    """
    if im.format != "PNG" or "exif" in im.info or im.fp is None:
        return im.getexif()
    pos = im.fp.tell()
    try:
        late = read_png_metadata(im.fp)
    finally:
        im.fp.seek(pos)
    if late.exif:
        # Pillow's own eXIf handler keeps the chunk with the JPEG-style prefix
        im.info["exif"] = late.exif if late.exif.startswith(b"Exif\0\0") else b"Exif\0\0" + late.exif
    for key, text in late.text.items():
        im.info.setdefault(key, text)
    return Image.Image.getexif(im)


def read_image(im: Image.Image) -> PillowRead:
    """EXIF/GPS/IPTC/XMP packet of an opened image (pixels are never decoded here)."""
    found = PillowRead()
    exif = found.guard("EXIF block", lambda: exif_of(im))
    if exif is None:
        exif = Image.Exif()
    ifd0: dict[int, Any] = found.guard("EXIF IFD0", lambda: dict(exif)) or {}
    exif_ifd: dict[int, Any] = found.guard("EXIF sub-IFD", lambda: dict(exif.get_ifd(ExifTags.IFD.Exif))) or {}
    gps: dict[int, Any] = found.guard("GPS IFD", lambda: dict(exif.get_ifd(ExifTags.IFD.GPSInfo))) or {}

    orientation = found.guard("Orientation", lambda: orientation_value(ifd0.get(ORIENTATION)))
    found.add("orientation", orientation)
    w, h = im.size
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    if w > 0 and h > 0:
        found.add("width", w)
        found.add("height", h)

    for field, tag in (("make", MAKE), ("model", MODEL), ("software", SOFTWARE)):
        found.add(field, found.guard(field, lambda tag=tag: clean_text(ifd0.get(tag))))
    found.add("description", found.guard("ImageDescription", lambda: clean_caption(ifd0.get(DESCRIPTION))))
    found.add("description", found.guard("XPComment", lambda: xp_text(ifd0.get(XP_COMMENT))), 1)
    found.add("title", found.guard("XPTitle", lambda: xp_text(ifd0.get(XP_TITLE))), 1)
    found.add("rating", found.guard("Rating", lambda: rating_value(ifd0.get(RATING), ifd0.get(RATING_PERCENT))))
    xp_keywords = found.guard("XPKeywords", lambda: keyword_list(split_keywords(xp_text(ifd0.get(XP_KEYWORDS)))))
    if xp_keywords:
        found.add("keywords", xp_keywords, 1)

    # dates: DateTimeOriginal, then DateTimeDigitized (CreateDate); GPS time is a last resort
    for rank, (date_tag, sub_tag, off_tag) in enumerate(
        ((DATE_ORIGINAL, SUBSEC_ORIGINAL, OFFSET_ORIGINAL), (DATE_DIGITIZED, SUBSEC_DIGITIZED, OFFSET_DIGITIZED))
    ):
        stamp = found.guard("date", lambda d=date_tag, s=sub_tag, o=off_tag: parse_stamp(
            exif_ifd.get(d), subsec=exif_ifd.get(s), offset=exif_ifd.get(o), date_only_ok=False))
        found.add("taken_at", stamp, rank)
    # IFD0 DateTime is the last change, but old cameras and scanners write nothing else
    found.add("taken_at", found.guard("DateTime", lambda: parse_stamp(ifd0.get(0x0132), date_only_ok=False)), 8)

    found.add("iso", found.guard("ISO", lambda: iso_value(exif_ifd.get(ISO))))
    found.add("f_number", found.guard("FNumber", lambda: positive(to_float(exif_ifd.get(F_NUMBER)))))
    found.add("exposure_time", found.guard("ExposureTime", lambda: positive(to_float(exif_ifd.get(EXPOSURE_TIME)))))
    found.add("focal_length", found.guard("FocalLength", lambda: positive(to_float(exif_ifd.get(FOCAL_LENGTH)))))
    found.add("focal_length_35", found.guard("FocalLengthIn35mmFilm", lambda: positive(to_float(exif_ifd.get(FOCAL_35)))))
    found.add("lens", found.guard("LensModel", lambda: clean_text(exif_ifd.get(LENS_MODEL))))
    found.has_maker_note = bool(exif_ifd.get(MAKER_NOTE))

    if gps:
        _read_gps(found, gps)
    _read_iptc(found, im)
    found.xmp = found.guard("XMP packet", lambda: _xmp_packet(im))
    return found


def _read_gps(found: PillowRead, gps: dict[int, Any]) -> None:
    lat = found.guard("GPSLatitude", lambda: apply_ref(dms_to_degrees(gps.get(GPS_LAT)), gps.get(GPS_LAT_REF), "S"))
    lng = found.guard("GPSLongitude", lambda: apply_ref(dms_to_degrees(gps.get(GPS_LNG)), gps.get(GPS_LNG_REF), "W"))
    position = clean_position(lat, lng)
    if position is not None:
        found.add("lat", position[0])
        found.add("lng", position[1])
        alt = found.guard("GPSAltitude", lambda: to_float(gps.get(GPS_ALT)))
        if alt is not None:
            below = found.guard("GPSAltitudeRef", lambda: to_int(gps.get(GPS_ALT_REF)) == 1)
            found.add("alt", -alt if below else alt)
    found.add("_gps_utc", found.guard("GPS time", lambda: _gps_utc(gps.get(GPS_DATE), gps.get(GPS_TIME))))


def _gps_utc(date: Any, time: Any) -> dt.datetime | None:
    """GPSDateStamp "2022:01:10" + GPSTimeStamp (h, m, s) rationals -> aware UTC datetime."""
    if not isinstance(date, str) or not isinstance(time, (tuple, list)) or len(time) != 3:
        return None
    stamp = parse_stamp(date)
    parts = [to_float(p) for p in time]
    if stamp is None or any(p is None for p in parts):
        return None
    h, m, s = parts  # type: ignore[misc]
    if not (0 <= h < 24 and 0 <= m < 60 and 0 <= s < 61):
        return None
    moment = stamp.wall + dt.timedelta(hours=h, minutes=m, seconds=s)
    return moment.replace(tzinfo=dt.timezone.utc)


def _iptc_text(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def _read_iptc(found: PillowRead, im: Image.Image) -> None:
    """IPTC-IIM (Photoshop APP13): keywords (Picasa writes them here), caption, title, date."""
    if im.format not in ("JPEG", "TIFF"):
        return
    info = found.guard("IPTC block", lambda: IptcImagePlugin.getiptcinfo(im))
    if not info:
        return
    keywords = info.get((2, 25))
    if keywords is not None:
        if not isinstance(keywords, list):
            keywords = [keywords]
        found.add("keywords", found.guard("IPTC Keywords", lambda: keyword_list(keywords)) or None, 2)
    found.add("description", found.guard("IPTC Caption", lambda: clean_caption(_iptc_text(info.get((2, 120))))), 2)
    found.add("title", found.guard("IPTC ObjectName", lambda: clean_caption(_iptc_text(info.get((2, 5))))), 2)
    found.add("taken_at", found.guard("IPTC date", lambda: _iptc_stamp(info.get((2, 55)), info.get((2, 60)))), 3)


def _iptc_stamp(date: Any, time: Any) -> Any:
    """DateCreated "20220110" + TimeCreated "151544-0400"; no date means no stamp."""
    date, time = _iptc_text(date), _iptc_text(time)
    if not isinstance(date, bytes) or len(date) != 8 or not date.isdigit():
        return None
    d = date.decode()
    text = f"{d[:4]}:{d[4:6]}:{d[6:]}"
    offset = None
    if isinstance(time, bytes) and len(time) >= 6 and time[:6].isdigit():
        t = time.decode("ascii", "replace")
        text += f" {t[:2]}:{t[2:4]}:{t[4:6]}"
        offset = t[6:] if len(t) > 6 else None
    return parse_stamp(text, offset=offset)


def _xmp_packet(im: Image.Image) -> bytes | None:
    """The embedded XMP packet where Pillow exposes it (JPEG/WebP/HEIF info, PNG iTXt, TIFF tag 700)."""
    for key in ("xmp", "XML:com.adobe.xmp"):
        value = im.info.get(key)
        if value:
            return value.encode() if isinstance(value, str) else bytes(value)
    tag_v2 = getattr(im, "tag_v2", None)
    if tag_v2 is not None and 700 in tag_v2:
        value = tag_v2[700]
        return value.encode() if isinstance(value, str) else bytes(value)
    return None

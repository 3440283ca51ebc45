"""Fields from ExifTool's JSON (-G1 -n): the path for RAW files, formats Pillow cannot open, and the
MakerNote extras (lens, Apple's Live Photo id) of files Pillow read.

Keys are "Group:Tag" with family-1 groups: IFD0/ExifIFD/GPS/Composite and the maker groups are
the camera's own data (Source.EXIF), XMP-* groups are embedded XMP (Source.XMP), IPTC counts
with the camera data as it is embedded by the same tools.
"""

from __future__ import annotations

from typing import Any

from daemon.library.metavalues import (
    clean_caption,
    clean_position,
    clean_text,
    iso_value,
    keyword_list,
    orientation_value,
    oriented_size,
    parse_stamp,
    parse_utc,
    positive,
    rating_value,
    split_keywords,
    to_float,
)
from daemon.library.sources import Source

Candidate = tuple[str, Any, Source, int]

# Tags read in print form (no -n) for the lens: numeric LensType/LensID are lookup codes.
LENS_TAGS = ("LensModel", "LensID", "Lens", "LensType")
# Apple's Live Photo id in a still: MakerNotes tag 0x0011, "MediaGroupUUID" before ExifTool 12.6x
# named it "ContentIdentifier"; both names are asked for.
EXTRA_TAGS = LENS_TAGS + ("ContentIdentifier", "MediaGroupUUID", "ISO")


def _pick(tags: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = tags.get(key)
        if value is not None and value != "":
            return value
    return None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [part.strip() for part in value.split(",")]
    return [value]


def lens_from(tags: dict[str, Any]) -> str | None:
    """The lens name from print-converted tags, skipping "Unknown (…)" and bare lookup codes."""
    for key in ("ExifIFD:LensModel", "Composite:LensID", "XMP-aux:Lens", "XMP-exifEX:LensModel"):
        text = clean_text(tags.get(key))
        if text and not text.lower().startswith(("unknown", "n/a")) and to_float(text) is None:
            return text
    for key, value in tags.items():  # maker-specific Lens/LensType ("Canon:LensType")
        if key.endswith((":LensType", ":Lens")) and not key.startswith("Composite"):
            text = clean_text(value)
            if text and not text.lower().startswith(("unknown", "n/a")) and to_float(text) is None:
                return text
    return None


def content_identifier_from(tags: dict[str, Any]) -> str | None:
    return clean_text(_pick(tags, "Apple:ContentIdentifier", "Apple:MediaGroupUUID", "Keys:ContentIdentifier"))


def fields_from_exiftool(tags: dict[str, Any]) -> list[Candidate]:
    """Map a full -n read to (field, value, source, rank) candidates."""
    out: list[Candidate] = []

    def add(name: str, value: Any, source: Source = Source.EXIF, rank: int = 0) -> None:
        if value is not None:
            out.append((name, value, source, rank))

    add("make", clean_text(_pick(tags, "IFD0:Make", "Keys:Make", "UserData:Make")))
    add("model", clean_text(_pick(tags, "IFD0:Model", "Keys:Model", "UserData:Model")))
    add("software", clean_text(_pick(tags, "IFD0:Software", "Keys:Software")))
    add("lens", clean_text(tags.get("ExifIFD:LensModel")))
    add("iso", iso_value(_pick(tags, "ExifIFD:ISO", "Composite:ISO")))
    add("f_number", positive(to_float(_pick(tags, "ExifIFD:FNumber", "Composite:Aperture"))))
    add("exposure_time", positive(to_float(_pick(tags, "ExifIFD:ExposureTime", "Composite:ShutterSpeed"))))
    add("focal_length", positive(to_float(tags.get("ExifIFD:FocalLength"))))
    add("focal_length_35", positive(to_float(tags.get("ExifIFD:FocalLengthIn35mmFormat"))))
    orientation = orientation_value(tags.get("IFD0:Orientation"))
    add("orientation", orientation)
    size = tags.get("Composite:ImageSize")
    if isinstance(size, str) and len(size.split()) == 2:
        dims = oriented_size(*size.split(), orientation)
        if dims:
            add("width", dims[0])
            add("height", dims[1])
    add("content_identifier", content_identifier_from(tags))

    # dates in the file's own order of trust
    add("taken_at", parse_stamp(tags.get("ExifIFD:DateTimeOriginal"), subsec=tags.get("ExifIFD:SubSecTimeOriginal"),
                                offset=tags.get("ExifIFD:OffsetTimeOriginal"), date_only_ok=False), rank=0)
    add("taken_at", parse_stamp(tags.get("ExifIFD:CreateDate"), subsec=tags.get("ExifIFD:SubSecTimeDigitized"),
                                offset=tags.get("ExifIFD:OffsetTimeDigitized"), date_only_ok=False), rank=1)
    add("taken_at", parse_stamp(tags.get("IFD0:ModifyDate"), date_only_ok=False), rank=8)
    iptc_date = tags.get("IPTC:DateCreated")
    if isinstance(iptc_date, str):
        iptc_time = tags.get("IPTC:TimeCreated")
        text = f"{iptc_date} {iptc_time}" if isinstance(iptc_time, str) else iptc_date
        add("taken_at", parse_stamp(text), rank=3)
    for rank, key in enumerate(("XMP-exif:DateTimeOriginal", "XMP-photoshop:DateCreated", "XMP-xmp:CreateDate",
                                "XMP-exif:DateTimeDigitized")):
        add("taken_at", parse_stamp(tags.get(key)), Source.XMP, rank)
    gps_utc = parse_utc(_pick(tags, "Composite:GPSDateTime", "XMP-exif:GPSDateTime"))
    add("_gps_utc", gps_utc)

    lat = to_float(_pick(tags, "Composite:GPSLatitude", "XMP-exif:GPSLatitude"))
    lng = to_float(_pick(tags, "Composite:GPSLongitude", "XMP-exif:GPSLongitude"))
    position = clean_position(lat, lng)
    if position is not None:
        add("lat", position[0])
        add("lng", position[1])
        add("alt", to_float(_pick(tags, "Composite:GPSAltitude", "XMP-exif:GPSAltitude")))

    add("rating", rating_value(tags.get("XMP-xmp:Rating"), tags.get("XMP-microsoft:RatingPercent")), Source.XMP)
    add("rating", rating_value(tags.get("IFD0:Rating"), tags.get("IFD0:RatingPercent")))
    add("title", clean_caption(tags.get("XMP-dc:Title")), Source.XMP)
    add("title", clean_caption(_pick(tags, "IPTC:ObjectName", "IFD0:XPTitle")))
    add("description", clean_caption(tags.get("XMP-dc:Description")), Source.XMP)
    add("description", clean_caption(_pick(tags, "IPTC:Caption-Abstract", "IFD0:ImageDescription", "IFD0:XPComment")))
    xmp_keywords = _as_list(tags.get("XMP-dc:Subject"))
    xmp_keywords += [str(k).rsplit("|", 1)[-1] for k in _as_list(tags.get("XMP-lr:HierarchicalSubject"))]
    add("keywords", keyword_list(xmp_keywords) or None, Source.XMP)
    embedded = _as_list(tags.get("IPTC:Keywords")) + split_keywords(tags.get("IFD0:XPKeywords"))
    add("keywords", keyword_list(embedded) or None)
    for name, key in (("make", "XMP-tiff:Make"), ("model", "XMP-tiff:Model"), ("lens", "XMP-aux:Lens")):
        add(name, clean_text(tags.get(key)), Source.XMP, 1)
    return out

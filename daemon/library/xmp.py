"""Reading an XMP packet: the one parser for XMP embedded in a file and for XMP sidecars.

XMP is RDF/XML. The same property may be an attribute of rdf:Description or a child element, its
value plain text or an rdf:Alt/Seq/Bag list, and files come in UTF-8 or UTF-16 (Lightroom
sidecars). We parse with the standard library's expat, after refusing any DOCTYPE/ENTITY
declaration, which XMP never needs and which is the only road to entity-expansion attacks.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

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
    parse_utc,
    positive,
    rating_value,
    to_float,
)

NAMESPACES = {
    "http://www.w3.org/1999/02/22-rdf-syntax-ns#": "rdf",
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://ns.adobe.com/xap/1.0/": "xmp",
    "http://ns.adobe.com/photoshop/1.0/": "photoshop",
    "http://ns.adobe.com/exif/1.0/": "exif",
    "http://cipa.jp/exif/1.0/": "exifEX",
    "http://ns.adobe.com/tiff/1.0/": "tiff",
    "http://ns.adobe.com/exif/1.0/aux/": "aux",
    "http://ns.adobe.com/lightroom/1.0/": "lr",
    "http://ns.microsoft.com/photo/1.0/": "MicrosoftPhoto",
    "http://ns.microsoft.com/photo/1.0": "MicrosoftPhoto",
    "http://www.digikam.org/ns/1.0/": "digiKam",
    "http://ns.apple.com/faceinfo/1.0/": "apple-fi",
    "http://www.w3.org/XML/1998/namespace": "xml",
}
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_FORBIDDEN = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_MAX_PACKET = 16 * 1024 * 1024  # no real XMP is larger; refuse rather than eat the Pi's memory

# XMP date properties in order of preference (rank): when the photo was taken, then created.
DATE_PROPERTIES = ("exif:DateTimeOriginal", "photoshop:DateCreated", "xmp:CreateDate",
                   "exif:DateTimeDigitized")


class XmpError(ValueError):
    """An XMP packet that cannot be parsed; the message says why."""


@dataclass
class XmpFields:
    """Fields read from one XMP packet, as (field, value, rank) ready for a Found collector."""

    values: list[tuple[str, Any, int]] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        for key, value, _rank in self.values:
            if key == name:
                return value
        return None


def _qualified(tag: str) -> str:
    if tag.startswith("{"):
        uri, _, local = tag[1:].partition("}")
        prefix = NAMESPACES.get(uri)
        if prefix is None:
            # unknown schema: keep the URI's last part so nothing collides with known names
            prefix = uri.rstrip("/#").rsplit("/", 1)[-1] or "ns"
        return f"{prefix}:{local}"
    return tag


def decode_packet(data: bytes | str) -> str:
    """Bytes of a packet to text: UTF-16 sidecars start with a BOM, everything else is UTF-8."""
    if isinstance(data, str):
        text = data
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16", "replace")
    elif data.startswith(b"\xef\xbb\xbf"):
        text = data[3:].decode("utf-8", "replace")
    elif len(data) > 1 and data[0] == 0 or (len(data) > 1 and data[1] == 0):
        text = data.decode("utf-16-be" if data[0] == 0 else "utf-16-le", "replace")
    else:
        text = data.decode("utf-8", "replace")
    return text.replace("\x00", "").lstrip("\ufeff")


def parse_properties(data: bytes | str) -> dict[str, Any]:
    """All simple and list properties of a packet: {"dc:subject": ["a", "b"], "xmp:Rating": "3"}."""
    if len(data) > _MAX_PACKET:
        raise XmpError(f"XMP packet of {len(data)} bytes is too large")
    text = decode_packet(data)
    if _FORBIDDEN.search(text):
        raise XmpError("XMP packet declares a DOCTYPE or ENTITY, refused")
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)
    start = text.find("<x:xmpmeta")
    if start < 0:
        start = text.find("<rdf:RDF")
    end_tag = "</x:xmpmeta>" if text.find("<x:xmpmeta") >= 0 else "</rdf:RDF>"
    end = text.rfind(end_tag)
    if start < 0 or end < 0:
        raise XmpError("no x:xmpmeta or rdf:RDF element in the XMP packet")
    body = text[start:end + len(end_tag)]
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise XmpError(f"XMP packet is not well-formed XML: {exc}") from exc
    props: dict[str, Any] = {}
    for desc in root.iter(f"{_RDF}Description"):
        for name, value in desc.attrib.items():
            qname = _qualified(name)
            if not qname.startswith(("rdf:", "xml:")):
                props.setdefault(qname, value)
        for child in desc:
            qname = _qualified(child.tag)
            value = _element_value(child)
            if value is not None:
                props.setdefault(qname, value)
    return props


def _element_value(elem: ET.Element) -> Any:
    """Text of a simple property; a list for Seq/Bag; the x-default entry of an Alt."""
    for container in elem:
        kind = container.tag
        if kind in (f"{_RDF}Seq", f"{_RDF}Bag"):
            return [(li.text or "") for li in container if li.tag == f"{_RDF}li"]
        if kind == f"{_RDF}Alt":
            items = [li for li in container if li.tag == f"{_RDF}li"]
            for li in items:
                if li.get(_XML_LANG, "").lower() == "x-default":
                    return li.text or ""
            return (items[0].text or "") if items else None
        return None  # a structure (exif:Flash): not a field we read
    if elem.get(f"{_RDF}resource") is not None:
        return elem.get(f"{_RDF}resource")
    return elem.text


def _first(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def read_xmp(data: bytes | str) -> XmpFields:
    """The metadata fields of one XMP packet. Raises XmpError if the packet is unreadable;
    a single bad property only loses that property."""
    props = parse_properties(data)
    out = XmpFields(properties=props)
    add = out.values.append

    for rank, name in enumerate(DATE_PROPERTIES):
        stamp = parse_stamp(_first(props.get(name)))
        if stamp is not None:
            add(("taken_at", stamp, rank))
    gps_utc = parse_utc(_first(props.get("exif:GPSTimeStamp")))
    if gps_utc is not None:
        add(("_gps_utc", gps_utc, 0))

    for fld, name in (("title", "dc:title"), ("description", "dc:description")):
        text = clean_caption(_first(props.get(name)))
        if text is not None:
            add((fld, text, 0))
    for fld, name in (("make", "tiff:Make"), ("model", "tiff:Model"),
                      ("software", "xmp:CreatorTool"), ("software", "tiff:Software")):
        text = clean_text(_first(props.get(name)))
        if text is not None:
            add((fld, text, 0))
    for rank, name in enumerate(("exifEX:LensModel", "aux:Lens")):
        text = clean_text(_first(props.get(name)))
        if text is not None:
            add(("lens", text, rank))

    keywords: list[Any] = []
    subject = props.get("dc:subject")
    if isinstance(subject, list):
        keywords += subject
    elif isinstance(subject, str):
        keywords += subject.split(",")
    for name, sep in (("lr:hierarchicalSubject", "|"), ("digiKam:TagsList", "/")):
        hierarchy = props.get(name)
        if isinstance(hierarchy, str):
            hierarchy = [hierarchy]
        if isinstance(hierarchy, list):
            keywords += [item.rsplit(sep, 1)[-1] for item in hierarchy if isinstance(item, str)]
    kw = keyword_list(keywords)
    if kw:
        add(("keywords", kw, 0))

    rating = rating_value(_first(props.get("xmp:Rating")), _first(props.get("MicrosoftPhoto:Rating")))
    if rating is not None:
        add(("rating", rating, 0))

    for fld, name, convert in (
        ("iso", "exif:ISOSpeedRatings", iso_value), ("iso", "exifEX:PhotographicSensitivity", iso_value),
        ("f_number", "exif:FNumber", lambda v: positive(to_float(v))),
        ("exposure_time", "exif:ExposureTime", lambda v: positive(to_float(v))),
        ("focal_length", "exif:FocalLength", lambda v: positive(to_float(v))),
        ("focal_length_35", "exif:FocalLengthIn35mmFilm", lambda v: positive(to_float(v))),
        ("orientation", "tiff:Orientation", orientation_value),
    ):
        raw = props.get(name)
        if raw is None:
            continue
        value = convert(_first(raw))
        if value is not None:
            add((fld, value, 0))

    lat = dms_to_degrees(_first(props.get("exif:GPSLatitude")))
    lng = dms_to_degrees(_first(props.get("exif:GPSLongitude")))
    if lat is not None and lng is not None:
        # "51,30.5N" carries its own hemisphere; a plain number may rely on the Ref properties
        if not _has_hemisphere(props.get("exif:GPSLatitude")):
            lat = apply_ref(lat, props.get("exif:GPSLatitudeRef"), "S")
        if not _has_hemisphere(props.get("exif:GPSLongitude")):
            lng = apply_ref(lng, props.get("exif:GPSLongitudeRef"), "W")
        position = clean_position(lat, lng)
        if position is not None:
            add(("lat", position[0], 0))
            add(("lng", position[1], 0))
            alt = to_float(_first(props.get("exif:GPSAltitude")))
            if alt is not None:
                if str(props.get("exif:GPSAltitudeRef", "0")).strip() == "1":
                    alt = -alt
                add(("alt", alt, 0))
    return out


def _has_hemisphere(value: Any) -> bool:
    return isinstance(value, str) and value.strip()[-1:].upper() in ("N", "S", "E", "W")


__all__ = ["XmpError", "XmpFields", "parse_properties", "read_xmp", "decode_packet"]

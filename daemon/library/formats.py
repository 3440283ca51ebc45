"""File types Shoebox indexes, by extension: one table that the scanner and the decoders share."""

from __future__ import annotations

import enum
from pathlib import PurePath


class Kind(enum.Enum):
    IMAGE = "image"
    RAW = "raw"
    VIDEO = "video"
    SIDECAR = "sidecar"


IMAGE_EXTENSIONS = {
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".jpe": "image/jpeg",
    ".heic": "image/heic", ".heif": "image/heif", ".hif": "image/heif",
    ".avif": "image/avif", ".png": "image/png", ".webp": "image/webp", ".gif": "image/gif",
    ".tif": "image/tiff", ".tiff": "image/tiff", ".jxl": "image/jxl", ".bmp": "image/bmp",
}
RAW_EXTENSIONS = {
    ".dng": "image/x-adobe-dng", ".cr2": "image/x-canon-cr2", ".cr3": "image/x-canon-cr3",
    ".nef": "image/x-nikon-nef", ".arw": "image/x-sony-arw", ".raf": "image/x-fuji-raf",
    ".rw2": "image/x-panasonic-rw2", ".orf": "image/x-olympus-orf", ".pef": "image/x-pentax-pef",
}
VIDEO_EXTENSIONS = {
    ".mp4": "video/mp4", ".mov": "video/quicktime", ".m4v": "video/x-m4v",
    ".avi": "video/x-msvideo", ".mkv": "video/x-matroska", ".3gp": "video/3gpp",
}
# Sidecars are not media of their own: they belong to the media file with the same base name.
SIDECAR_EXTENSIONS = {".xmp": "application/rdf+xml", ".json": "application/json"}


def kind_of(path: PurePath | str) -> Kind | None:
    """The kind of a file by its extension, or None for files Shoebox ignores."""
    ext = PurePath(path).suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return Kind.IMAGE
    if ext in RAW_EXTENSIONS:
        return Kind.RAW
    if ext in VIDEO_EXTENSIONS:
        return Kind.VIDEO
    if ext in SIDECAR_EXTENSIONS:
        return Kind.SIDECAR
    return None


def mime_of(path: PurePath | str) -> str:
    ext = PurePath(path).suffix.lower()
    for table in (IMAGE_EXTENSIONS, RAW_EXTENSIONS, VIDEO_EXTENSIONS, SIDECAR_EXTENSIONS):
        if ext in table:
            return table[ext]
    return "application/octet-stream"


# When several media files make one photo (RAW+JPEG, a Live Photo's still and video), the file
# with the lowest rank is the primary: its pixels make the thumbnails.
PRIMARY_RANK = {Kind.IMAGE: 0, Kind.RAW: 1, Kind.VIDEO: 2}

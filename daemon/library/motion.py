"""Motion photos: a short MP4 hidden inside a JPEG or HEIC (Samsung, Google Pixel, others).

Where the video sits is told in three ways, tried in this order:
  1. Samsung HEIC: a top-level 'mpvd' box holding the MP4.
  2. Google's XMP (also written by Samsung): GCamera:MicroVideoOffset (bytes from the end of the
     file) or a Container:Directory item with Semantic="MotionPhoto" and its Length (the video is
     the last item, padding included in the length).
  3. Samsung's SEF trailer ("...MotionPhoto_Data" + MP4, indexed by SEFH/SEFT at the end).
  4. Anything else: an MP4 'ftyp' box after the JPEG's end or the last HEIC box.
Every candidate is checked by walking the MP4's boxes (ftyp, then moov and mdat must follow), and
the walk gives the exact length. Only headers, the XMP and the tail are read: a 12 MB photo is
never loaded whole.
"""

from __future__ import annotations

import os
import re
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from daemon.library.decode import DecodeError

CHUNK = 1 << 20
MAX_XMP = 1 << 20  # XMP packets beyond this are not motion-photo metadata
MAX_SEF_DIR = 1 << 16

_MP4_TYPES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"meta", b"udta",
              b"mfra", b"moof", b"sidx", b"pdin", b"styp", b"prfl", b"junk"}


class NoMotionVideo(DecodeError):
    """The file holds no embedded video (or none that is a valid MP4)."""


@dataclass
class MotionVideo:
    offset: int  # byte offset of the MP4 in the file
    length: int  # its length in bytes
    source: str  # "samsung" | "google" | "trailer"


def find_motion_video(path: Path) -> MotionVideo | None:
    """Locate the MP4 embedded in a motion photo, or None for an ordinary still."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(16)
            if head[:2] == b"\xff\xd8":
                return _from_jpeg(f, size)
            if head[4:8] == b"ftyp":
                return _from_bmff(f, size)
    except OSError:
        return None
    return None


def extract_motion_video(path: Path, dest: Path) -> Path:
    """Copy the embedded MP4 to dest (temporary name, then rename) and return dest.

    Raises NoMotionVideo when the file has none.
    """
    path, dest = Path(path), Path(dest)
    found = find_motion_video(path)
    if found is None:
        raise NoMotionVideo(f"no embedded motion video in {path.name}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(path, "rb") as src, open(tmp, "wb") as out:
            src.seek(found.offset)
            left = found.length
            while left > 0:
                block = src.read(min(CHUNK, left))
                if not block:
                    raise NoMotionVideo(f"{path.name} ended inside its embedded video")
                out.write(block)
                left -= len(block)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


# --- containers -----------------------------------------------------------------------------

def _from_jpeg(f: BinaryIO, size: int) -> MotionVideo | None:
    xmp = _jpeg_xmp(f)
    found = _from_xmp(f, size, xmp) if xmp else None
    if found:
        return found
    found = _from_sef(f, size)
    if found:
        return found
    # A plain JPEG ends with its EOI marker (sometimes followed by a little padding): then
    # nothing is appended and the file need not be scanned.
    f.seek(max(0, size - 64))
    tail = f.read()
    if tail.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return None
    return _scan_for_ftyp(f, size, start=2)


def _from_bmff(f: BinaryIO, size: int) -> MotionVideo | None:
    """HEIC: walk the top-level boxes; an 'mpvd' box holds Samsung's video, data after the last
    valid box is a trailer."""
    pos = 0
    end_of_boxes = 0
    while pos + 8 <= size:
        header = _box_header(f, pos, size)
        if header is None:
            break
        box_size, typ, hdr_len = header
        if typ == b"mpvd":
            found = _verify(f, size, pos + hdr_len, "samsung", limit=pos + box_size)
            if found:
                return found
        pos += box_size
        end_of_boxes = pos
    if end_of_boxes < size:
        found = _verify(f, size, end_of_boxes, "trailer")
        if found:
            return found
        found = _from_sef(f, size)
        if found:
            return found
        return _scan_for_ftyp(f, size, start=end_of_boxes)
    return None


def _jpeg_xmp(f: BinaryIO) -> bytes | None:
    """The standard XMP packet of a JPEG, reading only the segment headers up to the image data."""
    f.seek(2)
    while True:
        marker = f.read(4)
        if len(marker) < 4 or marker[0] != 0xFF:
            return None
        kind = marker[1]
        if kind in (0xDA, 0xD9):  # start of scan / end of image: no more metadata
            return None
        (length,) = struct.unpack(">H", marker[2:4])
        if length < 2:
            return None
        if kind == 0xE1 and length > 30:
            body = f.read(length - 2)
            if body.startswith(b"http://ns.adobe.com/xap/1.0/\x00"):
                return body[29:]
            continue
        f.seek(length - 2, os.SEEK_CUR)


_OFFSET_RE = re.compile(rb'MicroVideoOffset\s*(?:=\s*"|>)\s*(\d+)')
_ITEM_RE = re.compile(rb"<Container:Item\b[^>]*?>", re.S)
_ATTR_RE = re.compile(rb'Item:(\w+)\s*=\s*"([^"]*)"')


def _from_xmp(f: BinaryIO, size: int, xmp: bytes) -> MotionVideo | None:
    xmp = xmp[:MAX_XMP]
    m = _OFFSET_RE.search(xmp)
    if m:
        offset = int(m.group(1))
        if 0 < offset <= size:
            found = _verify(f, size, size - offset, "google")
            if found:
                return found
    for item in _ITEM_RE.finditer(xmp):
        attrs = {k.decode(): v.decode("utf-8", "replace") for k, v in _ATTR_RE.findall(item.group(0))}
        if attrs.get("Semantic") == "MotionPhoto" and attrs.get("Length", "").isdigit():
            length = int(attrs["Length"])
            if 0 < length <= size:
                found = _verify(f, size, size - length, "google")
                if found:
                    return found
    return None


def _from_sef(f: BinaryIO, size: int) -> MotionVideo | None:
    """Samsung's SEF trailer: ... [blocks] SEFH ver count entries... dirlen 'SEFT'."""
    if size < 16:
        return None
    f.seek(size - 8)
    tail = f.read(8)
    if tail[4:] != b"SEFT":
        return None
    (dir_len,) = struct.unpack("<I", tail[:4])
    if not 12 <= dir_len <= min(MAX_SEF_DIR, size - 8):
        return None
    sefh = size - 8 - dir_len
    f.seek(sefh)
    directory = f.read(dir_len)
    if directory[:4] != b"SEFH":
        return None
    (count,) = struct.unpack("<I", directory[8:12])
    for i in range(min(count, (dir_len - 12) // 12)):
        _pad, _typ, back, length = struct.unpack("<HHII", directory[12 + 12 * i:24 + 12 * i])
        start = sefh - back
        if start < 0 or length < 8:
            continue
        f.seek(start)
        block = f.read(min(length, 64))
        (name_len,) = struct.unpack("<I", block[4:8])
        if block[8:8 + name_len] == b"MotionPhoto_Data":
            data = start + 8 + name_len
            found = _verify(f, size, data, "samsung", limit=start + length)
            if found:
                return found
    return None


def _scan_for_ftyp(f: BinaryIO, size: int, start: int) -> MotionVideo | None:
    """Last resort: look for an MP4 'ftyp' box anywhere after `start`, one chunk at a time."""
    pos = start
    carry = b""
    while pos < size:
        f.seek(pos)
        block = f.read(CHUNK)
        if not block:
            break
        data = carry + block
        base = pos - len(carry)
        i = data.find(b"ftyp")
        while i >= 0:
            box = base + i - 4
            if box >= start:
                found = _verify(f, size, box, "trailer")
                if found:
                    return found
            i = data.find(b"ftyp", i + 1)
        carry = data[-8:]
        pos += len(block)
    return None


# --- MP4 box walk ---------------------------------------------------------------------------

def _box_header(f: BinaryIO, pos: int, limit: int) -> tuple[int, bytes, int] | None:
    f.seek(pos)
    raw = f.read(16)
    if len(raw) < 8:
        return None
    box_size, typ = struct.unpack(">I4s", raw[:8])
    hdr = 8
    if box_size == 1:
        if len(raw) < 16:
            return None
        (box_size,) = struct.unpack(">Q", raw[8:16])
        hdr = 16
    elif box_size == 0:
        box_size = limit - pos
    if box_size < hdr or pos + box_size > limit or not all(32 <= c < 127 for c in typ):
        return None
    return box_size, typ, hdr


def _verify(f: BinaryIO, size: int, start: int, source: str, limit: int | None = None) -> MotionVideo | None:
    """An MP4 starts at `start` if an ftyp box is followed by boxes including moov and mdat;
    its length is where the box walk stops (the end, or the first thing that is not a box)."""
    limit = size if limit is None else min(limit, size)
    if start < 0 or start + 16 > limit:
        return None
    first = _box_header(f, start, limit)
    if first is None or first[1] != b"ftyp" or first[0] > 4096:
        return None
    pos = start
    seen: set[bytes] = set()
    while pos + 8 <= limit:
        header = _box_header(f, pos, limit)
        if header is None or header[1] not in _MP4_TYPES:
            break
        seen.add(header[1])
        pos += header[0]
    if {b"moov", b"mdat"} <= seen or {b"moof", b"mdat"} <= seen:
        return MotionVideo(offset=start, length=pos - start, source=source)
    return None

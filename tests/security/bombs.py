"""Hostile image files, made in the test from raw bytes or from a tiny Pillow image.

Two kinds:
- real bombs: complete, valid files whose data inflates to a huge bitmap (PNG and TIFF deflate
  of zeros, a uniform JPEG XL): a decoder that trusts them allocates it all;
- crafted headers: a small real file whose header is patched to claim a huge size (JPEG
  baseline, progressive and arithmetic-coded, WebP, GIF, BMP, HEIC, AVIF): the data does not
  match the header, and a decoder that sizes its buffers from the header alone is the victim.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def tiny_exif(make: str = "Bomb Inc") -> bytes:
    """A TIFF-structured EXIF block with just a camera make."""
    exif = Image.Exif()
    exif[0x010F] = make
    return exif.tobytes()  # b"Exif\0\0" + TIFF header and IFD0


def png_bomb(path: Path, width: int, height: int, *, exif_after_data: bool = True) -> Path:
    """A valid RGB PNG of zeros: ~1/1000 of its bitmap on disk. The eXIf chunk comes after the
    image data, where Pillow only finds it by decoding the whole image."""
    row = b"\0" * (1 + 3 * width)  # filter byte + pixels
    packer = zlib.compressobj(9)
    parts = [packer.compress(row) for _ in range(height)]
    data = b"".join(parts) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    out = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", ihdr), _chunk(b"IDAT", data)]
    if exif_after_data:
        out.append(_chunk(b"eXIf", tiny_exif()[6:]))
    out.append(_chunk(b"IEND", b""))
    path.write_bytes(b"".join(out))
    return path


def tiff_bomb(path: Path, width: int, height: int) -> Path:
    """A valid greyscale TIFF, one deflate strip of zeros."""
    packer = zlib.compressobj(9)
    row = b"\0" * width
    strip = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    entries = [  # tag, type (3 SHORT, 4 LONG), value
        (256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 8), (262, 3, 1),
        (273, 4, 0), (277, 3, 1), (278, 4, height), (279, 4, len(strip)),
    ]
    ifd_offset = 8
    data_offset = ifd_offset + 2 + 12 * len(entries) + 4
    ifd = struct.pack("<H", len(entries))
    for tag, typ, value in entries:
        if tag == 273:
            value = data_offset
        packed = struct.pack("<H", value) + b"\0\0" if typ == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, typ, 1) + packed
    ifd += struct.pack("<I", 0)
    path.write_bytes(b"II*\0" + struct.pack("<I", ifd_offset) + ifd + strip)
    return path


def _segments(data: bytes) -> list[tuple[int, bytes]]:
    """A JPEG cut into (marker, whole segment bytes); a scan's entropy-coded data stays with its SOS."""
    out = []
    pos = 2
    while pos < len(data):
        assert data[pos] == 0xFF
        marker = data[pos + 1]
        if marker == 0xD9:
            out.append((marker, data[pos:pos + 2]))
            break
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        end = pos + 2 + length
        if marker == 0xDA:  # scan data runs to the next marker that is not RSTn or a stuffed 0xFF00
            while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
                end += 1
        out.append((marker, data[pos:end]))
        pos = end
    return out


def jpeg_bomb(path: Path, width: int, height: int, *, progressive: bool = False, arithmetic: bool = False,
              subsampling: int = 2, keep_data: bool = True) -> Path:
    """A real 64x64 JPEG whose frame header claims width x height.

    arithmetic: the Huffman tables are dropped and the frame marker becomes SOF9 (sequential) or
        SOF10 (progressive), as `jpegtran -arithmetic` would mark it; the data no longer decodes
        to anything sensible, which is the point of a crafted file.
    keep_data: False drops the scan data too (a header and nothing else).
    """
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 120, 200)).save(buf, "JPEG", quality=80, progressive=progressive,
                                                     subsampling=subsampling)
    out = [b"\xff\xd8"]
    for marker, seg in _segments(buf.getvalue()):
        if marker in (0xC0, 0xC2):
            new_marker = (0xCA if progressive else 0xC9) if arithmetic else marker
            seg = bytes([0xFF, new_marker]) + seg[2:5] + struct.pack(">HH", height, width) + seg[9:]
        elif marker == 0xC4 and arithmetic:
            continue
        elif marker == 0xDA and not keep_data:
            (length,) = struct.unpack(">H", seg[2:4])
            seg = seg[:2 + length]
        out.append(seg)
    path.write_bytes(b"".join(out))
    return path


def webp_bomb(path: Path, width: int, height: int) -> Path:
    """A real lossless 64x64 WebP whose VP8L header claims width x height (at most 16384)."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(buf, "WEBP", lossless=True)
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"VP8L" and data[20] == 0x2F
    (bits,) = struct.unpack("<I", data[21:25])
    bits = (bits & ~0x0FFFFFFF) | (width - 1) | ((height - 1) << 14)
    data[21:25] = struct.pack("<I", bits)
    path.write_bytes(bytes(data))
    return path


def gif_bomb(path: Path, width: int, height: int) -> Path:
    """A real 64x64 GIF whose logical screen and image descriptor claim width x height."""
    buf = io.BytesIO()
    Image.new("P", (64, 64), 3).save(buf, "GIF")
    data = bytearray(buf.getvalue())
    data[6:10] = struct.pack("<HH", width, height)
    at = data.index(b",\0\0\0\0")  # image descriptor at (0, 0)
    data[at + 5:at + 9] = struct.pack("<HH", width, height)
    path.write_bytes(bytes(data))
    return path


def bmp_bomb(path: Path, width: int, height: int) -> Path:
    """A real 64x64 BMP whose header claims width x height (the pixel rows end early)."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buf, "BMP")
    data = bytearray(buf.getvalue())
    data[18:26] = struct.pack("<ii", width, height)
    path.write_bytes(bytes(data))
    return path


def heif_bomb(path: Path, width: int, height: int, *, fmt: str = "HEIF") -> Path:
    """A real 64x64 HEIC (or AVIF, fmt="AVIF") whose `ispe` property claims width x height."""
    import pillow_avif  # noqa: F401 - registers the AVIF writer
    import pillow_heif

    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 100, 0)).save(buf, fmt)
    data = bytearray(buf.getvalue())
    at = data.index(b"ispe")
    data[at + 8:at + 16] = struct.pack(">II", width, height)  # after version and flags
    path.write_bytes(bytes(data))
    return path


def jxl_bomb(path: Path, width: int, height: int) -> Path:
    """A valid uniform greyscale JPEG XL: a few KB for tens of megapixels. Making it costs
    ~3.5 bytes per pixel in this process, so keep it to a few tens of megapixels."""
    import pillow_jxl  # noqa: F401 - registers the JPEG XL writer

    Image.new("L", (width, height), 128).save(path, "JXL", lossless=True, effort=1)
    return path


def honest_grey_jpeg(path: Path, width: int, height: int) -> Path:
    """A complete, valid baseline greyscale JPEG of a uniform grey, of any size, written without
    ever holding its bitmap: every 8x8 block is the same 6 bits (DC difference 0 = "00", then
    end-of-block = "1010" in the standard luminance tables), so four blocks are three bytes.
    Width and height must be multiples of 8 and the block count a multiple of 4."""
    blocks = (width // 8) * (height // 8)
    assert width % 8 == 0 and height % 8 == 0 and blocks % 4 == 0
    buf = io.BytesIO()
    Image.new("L", (16, 16), 128).save(buf, "JPEG", quality=75)  # libjpeg's standard tables
    out = [b"\xff\xd8"]
    for marker, seg in _segments(buf.getvalue()):
        if marker == 0xC0:
            seg = seg[:5] + struct.pack(">HH", height, width) + seg[9:]
        elif marker == 0xDA:
            (length,) = struct.unpack(">H", seg[2:4])
            seg = seg[:2 + length] + b"\x28\xa2\x8a" * (blocks // 4)  # 001010 x 4
        out.append(seg)
    path.write_bytes(b"".join(out))
    return path

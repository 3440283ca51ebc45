"""What an image file's headers say, read without decoding a single pixel.

Pillow's lazy `Image.open` already gives the size of most formats from their headers. This
module covers what it does not:
- the layout of a JPEG (frame type, sampling, scans, where the image data starts), because the
  memory libjpeg needs depends on it: a progressive or multi-scan JPEG is buffered as DCT
  coefficients for the WHOLE image whatever scale is asked for, and a file whose data is far too
  short for the size its header claims is a crafted one, not a photo;
- the size of a JPEG XL file, because the JPEG XL plugin decodes every pixel inside
  `Image.open`, so the size must be known before Pillow ever sees the file;
- the PNG chunks that follow the image data (an `eXIf` or XMP text written after IDAT), because
  Pillow only reads them after decoding the whole image.

Every reader takes an open binary file, restores nothing and raises nothing for a malformed file:
it answers None (or an empty result) and leaves the verdict to the decoder.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

# -- JPEG ------------------------------------------------------------------------------------------

# Start-of-frame markers: C0-C3, C5-C7 (Huffman), C9-CB, CD-CF (arithmetic). C4, C8, CC are not.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PROGRESSIVE = {0xC2, 0xC6, 0xCA, 0xCE}
_ARITHMETIC = {0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_SOS = 0xDA
_MAX_SEGMENTS = 4096  # a header with more segments than this before the image data is not a photo


@dataclass(frozen=True)
class JpegLayout:
    """A JPEG frame as its SOF and first SOS segments describe it.

    sof: the frame marker's second byte (0xC0 baseline, 0xC2 progressive, 0xC9 arithmetic...).
    sampling: (h, v) sampling factors per component.
    scan_components: how many components the first scan holds; fewer than the frame means the
        components come in separate scans, which libjpeg buffers like a progressive file.
    data_offset: where the first scan's entropy-coded data starts.
    """

    sof: int
    width: int
    height: int
    sampling: tuple[tuple[int, int], ...]
    scan_components: int
    data_offset: int

    @property
    def progressive(self) -> bool:
        return self.sof in _PROGRESSIVE

    @property
    def arithmetic(self) -> bool:
        return self.sof in _ARITHMETIC

    @property
    def buffers_whole_image(self) -> bool:
        """libjpeg keeps every DCT coefficient of the image in memory (jdcoefct.c's full-image
        buffer) when the file has more than one scan: progressive, or one scan per component."""
        return self.progressive or self.scan_components < len(self.sampling)

    def blocks(self) -> list[int]:
        """8x8 DCT blocks per component, as libjpeg allocates them (rounded up to whole MCUs)."""
        hmax = max(h for h, _ in self.sampling)
        vmax = max(v for _, v in self.sampling)
        mcus_x = -(-self.width // (8 * hmax))
        mcus_y = -(-self.height // (8 * vmax))
        return [mcus_x * h * mcus_y * v for h, v in self.sampling]

    def coefficient_bytes(self) -> int:
        """Memory of the whole-image coefficient buffer: 64 coefficients of 2 bytes per block."""
        return sum(self.blocks()) * 64 * 2

    def min_data_bytes(self) -> int | None:
        """The fewest bytes of image data a complete file of this size can hold, or None when no
        such floor exists (arithmetic coding can spend far less than a bit on a block).

        Huffman codes are at least one bit long. A sequential scan codes every block with at
        least two of them (the DC difference and the end-of-block), a progressive file at least
        one per block in its DC scan; the blocks are counted without MCU padding to stay a floor.
        """
        if self.arithmetic:
            return None
        hmax = max(h for h, _ in self.sampling)
        vmax = max(v for _, v in self.sampling)
        blocks = sum(-(-(self.width * h // hmax) // 8) * -(-(self.height * v // vmax) // 8)
                     for h, v in self.sampling)
        bits_per_block = 1 if self.progressive else 2
        return blocks * bits_per_block // 8


def read_jpeg_layout(fp: BinaryIO) -> JpegLayout | None:
    """Walk the marker segments from the start of `fp` up to the first scan. None when the file
    is not a JPEG or its headers are broken before the first scan (then the decoder decides)."""
    try:
        fp.seek(0)
        if fp.read(2) != b"\xff\xd8":
            return None
        frame: tuple[int, int, int, tuple[tuple[int, int], ...]] | None = None
        for _ in range(_MAX_SEGMENTS):
            if fp.read(1) != b"\xff":
                return None  # not at a marker: broken header
            marker = fp.read(1)
            while marker == b"\xff":  # fill bytes may precede a marker
                marker = fp.read(1)
            if not marker:
                return None
            code = marker[0]
            if code == 0x01 or 0xD0 <= code <= 0xD7:
                continue  # standalone markers carry no length
            if code == 0xD9:
                return None  # EOI before any scan
            head = fp.read(2)
            if len(head) < 2:
                return None
            (length,) = struct.unpack(">H", head)
            if length < 2:
                return None
            if code in _SOF:
                body = fp.read(length - 2)
                if len(body) < 6:
                    return None
                _precision, height, width, count = struct.unpack(">BHHB", body[:6])
                if count == 0 or len(body) < 6 + 3 * count:
                    return None
                sampling = tuple(
                    (max(1, body[7 + 3 * i] >> 4), max(1, body[7 + 3 * i] & 0x0F)) for i in range(count))
                frame = (code, width, height, sampling)
            elif code == _SOS:
                body = fp.read(length - 2)
                if frame is None or not body:
                    return None
                code_, width, height, sampling = frame
                return JpegLayout(code_, width, height, sampling, body[0], fp.tell())
            else:
                fp.seek(length - 2, 1)
        return None
    except (OSError, struct.error, ValueError):
        return None


# -- JPEG XL ---------------------------------------------------------------------------------------

_JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
_JXL_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}


def is_jxl(head: bytes) -> bool:
    return head[:2] == b"\xff\x0a" or head[:12] == _JXL_CONTAINER


class _Bits:
    """JPEG XL's bit reader: least significant bit first."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u(self, n: int) -> int:
        value = 0
        for i in range(n):
            byte = self.data[(self.pos + i) >> 3]  # IndexError: header shorter than it claims
            value |= ((byte >> ((self.pos + i) & 7)) & 1) << i
        self.pos += n
        return value

    def u32(self, *dists: tuple[int, int]) -> int:
        """U32(d0, d1, d2, d3): a 2-bit selector, then that distribution's (offset, bits)."""
        offset, bits = dists[self.u(2)]
        return offset + self.u(bits)


def _jxl_codestream_size(code: bytes) -> tuple[int, int] | None:
    """The SizeHeader right after the FF 0A signature (ISO/IEC 18181-1, D.2)."""
    if code[:2] != b"\xff\x0a":
        return None
    bits = _Bits(code[2:])
    small = bits.u(1)
    dist = ((1, 9), (1, 13), (1, 18), (1, 30))
    height = (bits.u(5) + 1) * 8 if small else bits.u32(*dist)
    ratio = bits.u(3)
    if ratio:
        num, den = _JXL_RATIOS[ratio]
        width = height * num // den
    else:
        width = (bits.u(5) + 1) * 8 if small else bits.u32(*dist)
    return width, height


def read_jxl_size(fp: BinaryIO) -> tuple[int, int] | None:
    """Width and height of a JPEG XL file (bare codestream, or the ISO BMFF container whose
    `jxlc` box, or first `jxlp` box, holds the codestream). None when it cannot be read."""
    try:
        fp.seek(0)
        head = fp.read(64)
        if head[:2] == b"\xff\x0a":
            return _jxl_codestream_size(head)
        if head[:12] != _JXL_CONTAINER:
            return None
        fp.seek(0)
        for _ in range(_MAX_SEGMENTS):
            box = fp.read(8)
            if len(box) < 8:
                return None
            size, kind = struct.unpack(">I4s", box)
            header = 8
            if size == 1:
                (size,) = struct.unpack(">Q", fp.read(8))
                header = 16
            if kind == b"jxlc":
                return _jxl_codestream_size(fp.read(64))
            if kind == b"jxlp":
                return _jxl_codestream_size(fp.read(4 + 64)[4:])  # 4-byte part index first
            if size == 0:
                return None  # a box to the end of the file, and it is not the codestream
            if size < header:
                return None
            fp.seek(size - header, 1)
        return None
    except (OSError, struct.error, IndexError, KeyError):
        return None


# -- PNG -------------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = {b"tEXt", b"zTXt", b"iTXt"}
_MAX_CHUNK = 4 << 20  # metadata chunks bigger than this are skipped, not read
_MAX_TEXT = 4 << 20  # the most a compressed text chunk may inflate to
_MAX_CHUNKS = 100_000


@dataclass
class PngMetadata:
    """The metadata chunks of a PNG file wherever they are, before or after the image data."""

    exif: bytes | None = None
    text: dict[str, str] = field(default_factory=dict)


def read_png_metadata(fp: BinaryIO) -> PngMetadata:
    """Collect `eXIf` and the text chunks (tEXt, zTXt, iTXt) of a PNG, seeking over the image
    data instead of inflating it. Compressed text is inflated with a cap (a zTXt can be a bomb
    of its own); an oversized or broken chunk is skipped."""
    found = PngMetadata()
    try:
        fp.seek(0)
        if fp.read(8) != _PNG_SIGNATURE:
            return found
        for _ in range(_MAX_CHUNKS):
            head = fp.read(8)
            if len(head) < 8:
                break
            length, kind = struct.unpack(">I4s", head)
            if kind == b"IEND":
                break
            if (kind == b"eXIf" or kind in _TEXT_CHUNKS) and length <= _MAX_CHUNK:
                data = fp.read(length)
                if len(data) < length:
                    break
                if kind == b"eXIf":
                    found.exif = found.exif or data
                else:
                    key_value = _png_text(kind, data)
                    if key_value is not None and key_value[0] not in found.text:
                        found.text[key_value[0]] = key_value[1]
                fp.seek(4, 1)  # CRC
            else:
                fp.seek(length + 4, 1)
    except (OSError, struct.error, ValueError):
        pass
    return found


def _inflate(data: bytes) -> bytes | None:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, _MAX_TEXT)
    except zlib.error:
        return None
    return None if inflater.unconsumed_tail else out


def _png_text(kind: bytes, data: bytes) -> tuple[str, str] | None:
    """(keyword, text) of one text chunk, or None when it is broken or too big when inflated."""
    key, sep, rest = data.partition(b"\0")
    if not sep:
        return None
    keyword = key.decode("latin-1")
    if kind == b"tEXt":
        return keyword, rest.decode("latin-1")
    if kind == b"zTXt":
        text = _inflate(rest[1:])
        return None if text is None else (keyword, text.decode("latin-1"))
    # iTXt: compression flag, method, language tag \0, translated keyword \0, text (UTF-8)
    if len(rest) < 2:
        return None
    compressed = rest[0] == 1
    parts = rest[2:].split(b"\0", 2)
    if len(parts) < 3:
        return None
    body = parts[2]
    if compressed:
        inflated = _inflate(body)
        if inflated is None:
            return None
        body = inflated
    try:
        return keyword, body.decode("utf-8")
    except UnicodeDecodeError:
        return None

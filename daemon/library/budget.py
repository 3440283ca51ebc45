"""How much memory one decode will take, worked out from the headers before any pixel is decoded.

A pixel count alone does not bound memory: a 14000x14000 progressive JPEG decoded at 1/8 scale
still makes libjpeg hold every DCT coefficient of the full image (2 bytes x 64 per 8x8 block,
1.2 GB for 4:4:4), and a WebP is decoded through two full-size canvases besides Pillow's own
bitmap. So every decode path is priced by what it really allocates, and refused when the price
is over the budget (`index.max_decode_mib`).

The per-format figures below are measured (VmHWM growth while Pillow 12 and its plugins decode a
6 MP image, divided by its pixels), rounded up; they cover the decoder's own buffers on top of
the bitmap Pillow builds.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.library.headers import JpegLayout

MIB = 1 << 20

# Bytes per pixel the decoder allocates on top of Pillow's bitmap, at the full size.
_DECODER_EXTRA = {
    "WEBP": 14,  # libwebp's animation decoder: current and previous canvas (RGBA) and more
    "HEIF": 7,  # libheif: YCbCr planes (up to 16 bits) and the interleaved RGB output
    "AVIF": 7,  # libavif: the same
    "JXL": 8,  # libjxl's output buffer and working planes (the plugin decodes in Image.open)
    "TIFF": 4,  # libtiff's RGBA path (JPEG/YCbCr TIFF, odd layouts) allocates a full RGBA raster
}
# Pillow's bytes per pixel by mode (RGB is stored as 4 bytes, like RGBA).
_ONE_BYTE = {"1", "L", "P"}
_TWO_BYTES = {"I;16", "I;16B", "I;16L", "I;16N"}
# Modes decode.py converts at the full size before shrinking: one more full-size copy (16-bit and
# float greyscale go through a 32-bit copy and a point() on it: two).
_CONVERTED = {"P": 4, "PA": 4, "LA": 4, "La": 4, "RGBa": 4, "1": 1, "YCbCr": 4, "HSV": 4, "LAB": 4,
              "I;16": 8, "I;16B": 8, "I;16L": 8, "I;16N": 8, "I": 8, "F": 8}


def bytes_per_pixel(mode: str) -> int:
    if mode in _ONE_BYTE:
        return 1
    if mode in _TWO_BYTES:
        return 2
    return 4


def full_decode_bytes(fmt: str, mode: str, width: int, height: int) -> int:
    """Peak memory of decoding a format without shrink-on-load at width x height into `mode`."""
    per_pixel = bytes_per_pixel(mode) + _CONVERTED.get(mode, 0) + _DECODER_EXTRA.get(fmt, 0)
    return width * height * per_pixel


def jpeg_decode_bytes(layout: JpegLayout | None, out_width: int, out_height: int) -> int:
    """Peak memory of libjpeg decoding into an out_width x out_height draft: the draft bitmap
    (4 bytes a pixel, as Pillow stores RGB and CMYK), plus, for a file in several scans, the
    coefficient buffer of the FULL image."""
    total = out_width * out_height * 4
    if layout is not None and layout.buffers_whole_image:
        total += layout.coefficient_bytes()
    return total


@dataclass(frozen=True)
class Verdict:
    """Why a decode is refused; None from `check_jpeg` means it may go ahead."""

    reason: str


def check_jpeg(layout: JpegLayout, data_bytes: int, *, max_bytes: int, max_unverified_bytes: int) -> Verdict | None:
    """Refuse a JPEG whose headers promise more than its data holds, or whose coefficient buffer
    is over the budget, before libjpeg allocates anything.

    data_bytes: bytes from the first scan to the end of the file.
    max_unverified_bytes: the budget for an arithmetic-coded multi-scan file. Arithmetic coding
        can spend far less than a bit on a block, so its data size cannot vouch for its header,
        and any header would otherwise buy the whole budget; such files are rare in the wild.
    """
    w, h = layout.width, layout.height
    floor = layout.min_data_bytes()
    if floor is not None and data_bytes < floor:
        return Verdict(f"image data ends early: the header claims {w}x{h}, which needs at least "
                       f"{floor} bytes of image data, but the file holds {data_bytes}")
    if not layout.buffers_whole_image:
        return None
    need = layout.coefficient_bytes()
    kind = "progressive JPEG" if layout.progressive else "multi-scan JPEG"
    if layout.arithmetic and need > max_unverified_bytes:
        return Verdict(f"arithmetic-coded {kind} too large to decode safely: {w}x{h} needs "
                       f"{need // MIB} MiB of coefficients > {max_unverified_bytes // MIB} MiB")
    if need > max_bytes:
        return Verdict(f"{kind} too large to decode: {w}x{h} needs {need // MIB} MiB of "
                       f"coefficients > limit {max_bytes // MIB} MiB")
    return None

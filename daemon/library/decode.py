"""Decode an image file once, at the smallest scale that still serves every output.

A 12 MP JPEG decoded in full costs ~36 MB and most of the indexing time; libjpeg can decode the
same file at 1/2, 1/4 or 1/8 scale almost for free (`Image.draft`). So the caller says how many
pixels it needs on the long side (the largest "fit" thumbnail) and on the short side (the largest
square tile), and we ask libjpeg for the smallest scale that still covers both. Other formats
have no such shortcut: they are decoded in full and shrunk with `Image.reduce` right away, so
every later step works on a small image.

Hostile files: nothing is decoded before the size the headers claim has been checked against
`max_pixels` and the memory the decode will allocate (budget.py) against `max_decode_bytes`.
That includes the EXIF orientation (read without loading, see exif.exif_of), JPEG XL (whose
plugin decodes inside Image.open, so its size is read from the codestream first) and
progressive JPEGs (whose coefficient buffer is full-size whatever the draft scale).

Whatever comes in, what goes out is the same: an RGB image in sRGB, upright (EXIF orientation
applied), alpha flattened on white, plus the FULL size after orientation (the size of the
photo, not of the draft), so the caller never has to care about formats again.

Every failure surfaces as `DecodeError` with a reason a person can read; the index pipeline
records it and goes on with the next file.
"""

from __future__ import annotations

import io
import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image, ImageCms, UnidentifiedImageError

from daemon.library import budget
from daemon.library.exif import exif_of
from daemon.library.formats import Kind, kind_of
from daemon.library.headers import JpegLayout, is_jxl, read_jpeg_layout, read_jxl_size

log = logging.getLogger(__name__)

# Format plugins register themselves with Pillow on import. A missing plugin only means those
# files fail with "unsupported format"; the rest of the library keeps working.
try:  # HEIC / HEIF
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - depends on the installation
    log.warning("pillow-heif is not installed: HEIC files cannot be decoded")
try:  # AVIF (Pillow itself has no AVIF decoder in this build)
    import pillow_avif  # noqa: F401
except ImportError:  # pragma: no cover
    log.warning("pillow-avif-plugin is not installed: AVIF files cannot be decoded")
try:  # JPEG XL
    import pillow_jxl  # noqa: F401
except ImportError:  # pragma: no cover
    log.warning("pillow-jxl-plugin is not installed: JPEG XL files cannot be decoded")

ORIENTATION_TAG = 0x0112

# EXIF orientation -> the transpose that makes the image upright (same table as ImageOps).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

RawPreviewReader = Callable[[Path], "bytes | None"]


class DecodeError(Exception):
    """The file cannot be turned into pixels; the message says why, for a person to read."""


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds that keep one decode from exhausting a 2 GB Raspberry Pi.

    max_pixels: images whose header claims more are refused before any pixel is decoded.
    max_decoded_pixels: formats without shrink-on-load (PNG, TIFF, HEIC...) are decoded in full;
        above this they are refused too, as their full bitmap alone would not fit comfortably.
        A JPEG in one scan is exempt (draft decoding never builds its full-size bitmap); a
        progressive one is priced by its coefficient buffer instead (see budget.py).
    max_decode_bytes: the most memory one decode may allocate, as budget.py prices it from the
        headers (decoder buffers, bitmap, mode conversion); above it the file is refused.
    max_unverified_bytes: the same for an arithmetic-coded progressive JPEG, whose data size
        cannot vouch for the size its header claims.
    max_preview_bytes: a RAW file's embedded preview larger than this is not trusted.
    """

    max_pixels: int = 200_000_000
    max_decoded_pixels: int = 120_000_000
    max_decode_bytes: int = 768 * budget.MIB
    max_unverified_bytes: int = 64 * budget.MIB
    max_preview_bytes: int = 64 * 1024 * 1024


@dataclass
class Decoded:
    """Pixels ready for thumbnails and analysis.

    image: RGB, sRGB, upright; possibly smaller than the photo (draft / reduce).
    width, height: the photo's full size after orientation (for RAW files: the embedded
        preview's size, the sensor size comes from the metadata reader).
    orientation: the EXIF orientation that was applied (1 = none).
    has_alpha: the file had real transparency (now flattened on white).
    format: Pillow's format name ("JPEG", "HEIF", "AVIF", "JXL", "PNG", ...).
    source_profile: description of the ICC profile converted from, None when already sRGB/none.
    """

    image: Image.Image
    width: int
    height: int
    orientation: int
    has_alpha: bool
    format: str
    source_profile: str | None = None


def decode(
    path: Path,
    *,
    longest_needed: int,
    limits: DecodeLimits,
    raw_preview: RawPreviewReader | None = None,
    shortest_needed: int = 0,
    orientation: int | None = None,
) -> Decoded:
    """Decode `path` into an upright sRGB image at least `longest_needed` px on its long side
    and `shortest_needed` px on its short side (or the full size, if smaller).

    raw_preview: for RAW files, a callable returning the embedded preview JPEG (the index
        passes ExifTool's binary reader). Without one, a RAW file is tried with Pillow directly.
    orientation: overrides the EXIF orientation found in the pixels' own file; the index passes
        the RAW file's orientation here, as embedded previews usually carry none.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DecodeError(f"cannot read file: {exc.strerror or exc}") from exc
    if size == 0:
        raise DecodeError("empty file (0 bytes)")
    try:
        if raw_preview is not None and _is_raw(path):
            return _decode_raw(path, longest_needed, shortest_needed, limits, raw_preview, orientation)
        _check_jxl(path, limits)
        with Image.open(path) as im:
            return _decode_open(im, longest_needed, shortest_needed, limits, orientation)
    except DecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - decoders fail in many ways; the caller needs one
        raise DecodeError(_reason(exc, path)) from exc


def _is_raw(path: Path) -> bool:
    return kind_of(path) is Kind.RAW


def _decode_raw(
    path: Path,
    longest: int,
    shortest: int,
    limits: DecodeLimits,
    raw_preview: RawPreviewReader,
    orientation: int | None,
) -> Decoded:
    """A RAW file's pixels come from the JPEG the camera embedded: demosaicing a 24 MP sensor
    dump on a Pi would take seconds and the preview is what the camera showed anyway."""
    try:
        data = raw_preview(path)
    except Exception as exc:  # noqa: BLE001 - the reader is another module's code
        raise DecodeError(f"RAW preview could not be read: {exc}") from exc
    if not data:
        raise DecodeError("RAW file has no embedded preview image")
    if len(data) > limits.max_preview_bytes:
        raise DecodeError(f"RAW preview too large: {len(data)} bytes")
    if orientation is None:
        orientation = tiff_orientation(path)
    with Image.open(io.BytesIO(data)) as im:
        decoded = _decode_open(im, longest, shortest, limits, orientation)
    decoded.format = "RAW-PREVIEW"
    return decoded


def _check_size(w: int, h: int, limits: DecodeLimits) -> None:
    if w <= 0 or h <= 0:
        raise DecodeError(f"invalid image size {w}x{h}")
    if w * h > limits.max_pixels:
        raise DecodeError(f"decompression bomb: {w * h:.2g} pixels > limit {limits.max_pixels:.2g} "
                          f"(the header claims {w}x{h})")


def _check_full_decode(fmt: str, mode: str, w: int, h: int, limits: DecodeLimits) -> None:
    """Refuse a decode without shrink-on-load whose bitmap or price is over the limits."""
    if w * h > limits.max_decoded_pixels:
        raise DecodeError(
            f"image too large to decode: {w}x{h}, {w * h:.2g} pixels > {limits.max_decoded_pixels:.2g} "
            f"({fmt} has no shrink-on-load)"
        )
    need = budget.full_decode_bytes(fmt, mode, w, h)
    if need > limits.max_decode_bytes:
        raise DecodeError(
            f"image too large to decode: a {w}x{h} {fmt} ({mode}) needs {need // budget.MIB} MiB "
            f"> limit {limits.max_decode_bytes // budget.MIB} MiB"
        )


def _check_jxl(path: Path, limits: DecodeLimits) -> None:
    """The JPEG XL plugin decodes every pixel inside Image.open: check the codestream's size
    header first (the mode is not known yet: priced as RGBA)."""
    with open(path, "rb") as f:
        if not is_jxl(f.read(16)):
            return
        size = read_jxl_size(f)
    if size is None:
        raise DecodeError("corrupt or unreadable image: JPEG XL size header cannot be read")
    _check_size(*size, limits)
    _check_full_decode("JXL", "RGBA", *size, limits)


def _check_jpeg(im: Image.Image, limits: DecodeLimits) -> JpegLayout | None:
    """Before libjpeg allocates anything: the data must be long enough for the size the header
    claims, and a multi-scan file's full-size coefficient buffer must fit the budget."""
    fp = im.fp
    if fp is None:
        return None
    pos = fp.tell()
    try:
        layout = read_jpeg_layout(fp)
        end = fp.seek(0, io.SEEK_END)
    finally:
        fp.seek(pos)
    if layout is None:
        return None  # Pillow parsed what we could not: libjpeg will judge it
    verdict = budget.check_jpeg(layout, end - layout.data_offset, max_bytes=limits.max_decode_bytes,
                                max_unverified_bytes=limits.max_unverified_bytes)
    if verdict is not None:
        raise DecodeError(verdict.reason)
    return layout


def _check_draft(im: Image.Image, layout: JpegLayout | None, limits: DecodeLimits) -> None:
    """The JPEG's price at the draft scale libjpeg agreed to: its bitmap plus, for a multi-scan
    file, the full-size coefficient buffer (a large view of a 200 MP photo is decoded at 1/2)."""
    w, h = im.size
    need = budget.jpeg_decode_bytes(layout, w, h)
    if need > limits.max_decode_bytes:
        raise DecodeError(f"image too large to decode: a {w}x{h} JPEG draft needs {need // budget.MIB} MiB "
                          f"> limit {limits.max_decode_bytes // budget.MIB} MiB")


def _decode_open(
    im: Image.Image, longest: int, shortest: int, limits: DecodeLimits, orientation: int | None
) -> Decoded:
    fmt = im.format or "unknown"
    w, h = im.size
    _check_size(w, h, limits)
    is_jpeg = fmt in ("JPEG", "MPO")  # MPO: a JPEG with more pictures after the first
    layout = _check_jpeg(im, limits) if is_jpeg else None
    if orientation is None:
        orientation = _exif_orientation(im)
    if orientation not in _TRANSPOSE:
        orientation = 1

    # Requested size in the file's own (stored) orientation: the long side of the stored image is
    # the long side of the upright one, as every EXIF orientation is a flip or a quarter turn.
    need_long = max(1, min(longest, max(w, h)))
    need_short = max(1, min(shortest, min(w, h)))
    req = (need_long, need_short) if w >= h else (need_short, need_long)
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)  # animated GIF/WebP, multi-page TIFF: the first frame stands for the file
    im.draft("RGB", req)  # JPEG: libjpeg DCT scaling; HEIF: an embedded thumbnail if big enough
    if is_jpeg:
        _check_draft(im, layout, limits)
    else:
        _check_full_decode(fmt, im.mode, *im.size, limits)  # after draft: the size really decoded
    icc = im.info.get("icc_profile")
    im.load()
    img = _normalise_mode(im)
    factor = min(img.width // req[0], img.height // req[1])
    if factor >= 2:
        img = img.reduce(factor)  # box filter, exact for integer factors, and fast

    profile_name = None
    if icc:
        img, profile_name = _to_srgb(img, icc)
    if img.mode not in ("RGB", "RGBA"):
        img = img.convert("RGBA" if "A" in img.mode else "RGB")

    has_alpha = False
    if img.mode == "RGBA":
        has_alpha = img.getchannel("A").getextrema()[0] < 255
        img = _flatten(img) if has_alpha else img.convert("RGB")

    if orientation in _TRANSPOSE:
        img = img.transpose(_TRANSPOSE[orientation])
    if orientation >= 5:
        w, h = h, w
    return Decoded(img, w, h, orientation, has_alpha, fmt, profile_name)


def _normalise_mode(im: Image.Image) -> Image.Image:
    """Bring exotic modes to L / RGB / RGBA / CMYK (the modes reduce() and ImageCms handle)."""
    mode = im.mode
    if mode in ("RGB", "RGBA", "L", "CMYK"):
        return im
    if mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    if mode in ("PA", "LA", "La", "RGBa"):
        return im.convert("RGBA")
    if mode == "1":
        return im.convert("L")
    if mode.startswith("I;16") or mode == "I":
        # 16-bit greyscale: keep the top 8 bits instead of clipping everything above 255 to white.
        hi = 65535 if mode.startswith("I;16") or im.getextrema()[1] > 255 else 255
        return im.convert("I").point(lambda v: v * (255.0 / hi)).convert("L")
    if mode == "F":
        scale = 255.0 if im.getextrema()[1] <= 1.0 else 1.0  # 0..1 floats or 0..255 floats
        return im.point(lambda v: v * scale).convert("L")
    if mode == "LAB":
        # Pillow has no colour-correct LAB->RGB convert; little CMS does (D50 Lab -> sRGB).
        return ImageCms.profileToProfile(
            im, ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), outputMode="RGB"
        )
    return im.convert("RGB")  # YCbCr, HSV, ...


_SRGB_NAMES = ("srgb", "iec61966-2.1", "iec 61966-2-1")


def _to_srgb(img: Image.Image, icc: bytes) -> tuple[Image.Image, str | None]:
    """Convert from the embedded profile to sRGB, so wide-gamut phone photos (Display P3, Adobe
    RGB) do not look washed out in browsers that ignore a missing profile. A broken profile is
    ignored rather than failing the photo."""
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        name = (ImageCms.getProfileDescription(src) or "").strip()
    except Exception as exc:  # noqa: BLE001 - profiles in the wild are often broken
        log.debug("ignoring unreadable ICC profile: %s", exc)
        return img, None
    if img.mode in ("RGB", "RGBA") and any(s in name.lower() for s in _SRGB_NAMES):
        return img, None  # already sRGB: save the conversion
    out_mode = "RGBA" if img.mode == "RGBA" else "RGB"
    try:
        alpha = img.getchannel("A") if img.mode == "RGBA" else None
        base = img.convert("RGB") if img.mode == "RGBA" else img
        out = ImageCms.profileToProfile(
            base, src, ImageCms.createProfile("sRGB"), outputMode="RGB",
            renderingIntent=ImageCms.Intent.PERCEPTUAL,
        )
        if out is None:  # pragma: no cover - only when inPlace=True
            return img, None
        if alpha is not None:
            out.putalpha(alpha)
        assert out.mode == out_mode
        return out, name or "unnamed profile"
    except Exception as exc:  # noqa: BLE001
        log.debug("ICC conversion from %r failed, using pixels as they are: %s", name, exc)
        return img, None


def _flatten(img: Image.Image) -> Image.Image:
    """Transparent areas on white: the way a browser shows a transparent PNG on a light page,
    and JPEG thumbnails cannot hold alpha."""
    bg = Image.new("RGB", img.size, (255, 255, 255))
    bg.paste(img, mask=img.getchannel("A"))
    return bg


def _exif_orientation(im: Image.Image) -> int:
    try:
        value = exif_of(im).get(ORIENTATION_TAG, 1)
        return int(value) if value in _TRANSPOSE or value == 1 else 1
    except Exception:  # noqa: BLE001 - broken EXIF must not hide good pixels
        return 1


def tiff_orientation(path: Path) -> int:
    """Orientation from IFD0 of a TIFF-based RAW file (DNG, NEF, CR2, ARW, PEF, ORF, RW2...),
    reading only the header and the first directory. 1 when not TIFF-based or not found."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if head[:2] == b"II":
                end = "<"
            elif head[:2] == b"MM":
                end = ">"
            else:
                return 1
            (ifd,) = struct.unpack(end + "I", head[4:8])
            f.seek(ifd)
            (count,) = struct.unpack(end + "H", f.read(2))
            entries = f.read(12 * min(count, 512))
        for i in range(0, len(entries) - 11, 12):
            tag, typ, _n = struct.unpack(end + "HHI", entries[i:i + 8])
            if tag == ORIENTATION_TAG and typ == 3:
                (value,) = struct.unpack(end + "H", entries[i + 8:i + 10])
                return value if value in _TRANSPOSE else 1
    except (OSError, struct.error):
        pass
    return 1


def _reason(exc: Exception, path: Path) -> str:
    """A short, human reason for a decoder exception."""
    msg = str(exc)
    if isinstance(exc, Image.DecompressionBombError):
        return f"decompression bomb: {msg}"
    if isinstance(exc, UnidentifiedImageError):
        return f"unsupported format or not an image ({path.suffix or 'no extension'})"
    if isinstance(exc, MemoryError):
        return "out of memory while decoding"
    low = msg.lower()
    if "truncated" in low or isinstance(exc, EOFError):
        kind = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg", ".jpe") else "image"
        return f"truncated {kind}: {msg}" if msg else f"truncated {kind}"
    return f"corrupt or unreadable image: {type(exc).__name__}: {msg}"

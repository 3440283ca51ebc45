"""Decoding every format the library meets, upright and in sRGB, within bounded memory."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from daemon.library.decode import DecodeError, DecodeLimits, decode, tiff_orientation
from daemon.library.formats import Kind, kind_of
from daemon.library.render import render
from daemon.library.thumbnails import INDEX_SIZES, ThumbSettings
from tests.conftest import REPO, copy_sample

LIMITS = DecodeLimits()
ORIENT = "exif-samples/jpg/orientation"


def _render(path: Path, root: Path, name: str = "abcd1234", **kw):
    return render(path, kind=kind_of(path) or Kind.IMAGE, content_hash=name, thumbs_root=root,
                  settings=ThumbSettings(), limits=LIMITS, **kw)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def _expected(size_name: str, w: int, h: int) -> tuple[int, int]:
    """Expected thumbnail size, worked out independently of Size.target."""
    kind, edge = size_name.split("_")
    edge = int(edge)
    if kind == "tile":
        side = min(edge, w, h)
        return side, side
    scale = min(1.0, edge / max(w, h))
    return round(w * scale), round(h * scale)


# --- draft: the smallest JPEG scale that still serves every output ------------------------

def test_jpeg_draft_decodes_at_reduced_scale_but_reports_full_size(samples, tmp_path):
    src = copy_sample(samples, "exif-samples/jpg/mobile/HMD_Nokia_8.3_5G.jpg", tmp_path)
    d = decode(src, longest_needed=720, limits=LIMITS)
    assert (d.width, d.height) == (4608, 1976)
    assert d.image.size == (1152, 494)  # 1/4 scale: 1152 >= 720, and 1/8 (576) would not do
    d = decode(src, longest_needed=1920, shortest_needed=500, limits=LIMITS)
    assert d.image.size == (2304, 988)  # 1/2: long side 2304 >= 1920


def test_panorama_tile_needs_the_short_side(tmp_path):
    """A 4000x1000 panorama asked for 720 px long and a 500 px tile must keep >= 500 px short:
    1/4 scale (1000x250) would serve the long side but make a blurry upscaled tile."""
    src = tmp_path / "pano.jpg"
    Image.linear_gradient("L").resize((4000, 1000)).convert("RGB").save(src, quality=80)
    d = decode(src, longest_needed=720, shortest_needed=500, limits=LIMITS)
    assert d.image.size == (2000, 500)
    d = decode(src, longest_needed=720, shortest_needed=0, limits=LIMITS)
    assert d.image.size == (1000, 250)


def test_png_is_reduced_right_after_load(samples, tmp_path):
    src = copy_sample(samples, "immich-test-assets/formats/png/density_plot.png", tmp_path)
    d = decode(src, longest_needed=224, limits=LIMITS)
    assert (d.width, d.height) == (800, 800)
    assert d.image.size == (267, 267)  # reduce(3) rounds up: still >= 224


# --- orientation -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["landscape", "portrait"])
def test_every_exif_orientation_gives_the_same_thumbnails(samples, tmp_path, kind):
    root = tmp_path / "thumbs"
    ref = _render(copy_sample(samples, f"{ORIENT}/{kind}_1.jpg", tmp_path), root, "00000001")
    for n in range(2, 9):
        got = _render(copy_sample(samples, f"{ORIENT}/{kind}_{n}.jpg", tmp_path), root, f"0000000{n}")
        assert (got.width, got.height) == (ref.width, ref.height), n
        assert got.orientation == n
        for size in INDEX_SIZES:
            a, b = _pixels(ref.thumbs[size]), _pixels(got.thumbs[size])
            assert a.shape == b.shape, (n, size)
            if size in ("tile_224", "fit_720"):
                mad = float(np.abs(a - b).mean())
                # _2.._8 carry Apple's "Generic RGB" profile, _1 none: without the conversion
                # to sRGB the same pixels differ by ~14; converted, by ~6 (JPEG re-encoding).
                assert mad < 8, f"{kind}_{n} {size}: mean abs difference {mad:.1f}"


def test_wrong_orientation_would_be_caught(samples, tmp_path):
    """The comparison above is strict enough to see a missing rotation."""
    root = tmp_path / "thumbs"
    ref = _render(copy_sample(samples, f"{ORIENT}/landscape_1.jpg", tmp_path), root, "00000001")
    with Image.open(samples / ORIENT / "landscape_3.jpg") as im:  # upside down, not rotated back
        upside = np.asarray(im.convert("RGB").resize((224, 168)), dtype=np.int16)
    a = _pixels(ref.thumbs["fit_720"])
    b = np.asarray(Image.fromarray(a.astype(np.uint8)).resize((224, 168)), dtype=np.int16)
    assert float(np.abs(b - upside).mean()) > 15


# --- every format -----------------------------------------------------------------------------

FORMATS = {
    "immich-test-assets/formats/jpg/el_torcal_rocks.jpg": (512, 341),
    "immich-test-assets/formats/heic/IMG_2682.heic": (4032, 3024),
    "exif-samples/heic/IMG_5195.HEIC": (2566, 3313),
    "immich-test-assets/formats/avif/8bit-sRGB.avif": (1617, 1080),
    "immich-test-assets/formats/jxl/8bit-sRGB.jxl": (1440, 1080),
    "immich-test-assets/formats/png/density_plot.png": (800, 800),
    "immich-test-assets/formats/webp/denali.webp": (600, 315),
    "exif-samples/tiff/Crémieux11.tiff": (199, 47),
    "exif-samples/tiff/BSG1.tiff": (635, 348),
    "exif-samples/jpg/hdr/iphone_hdr_NO.jpg": (3264, 2448),
}


@pytest.mark.parametrize("rel", list(FORMATS), ids=lambda r: Path(r).name)
def test_every_format_renders_all_five_sizes(samples, tmp_path, rel):
    src = copy_sample(samples, rel, tmp_path)
    r = _render(src, tmp_path / "thumbs")
    w, h = FORMATS[rel]
    assert (r.width, r.height) == (w, h)
    assert set(r.thumbs) == set(INDEX_SIZES)
    for size, path in r.thumbs.items():
        with Image.open(path) as im:
            assert im.format == "JPEG"
            assert im.size == _expected(size, w, h), size
            assert "icc_profile" not in im.info  # plain sRGB, no foreign profile


def test_big_heic_thumbnail_sizes_spelled_out(samples, tmp_path):
    src = copy_sample(samples, "immich-test-assets/formats/heic/IMG_2682.heic", tmp_path)
    r = _render(src, tmp_path / "thumbs")
    sizes = {k: Image.open(v).size for k, v in r.thumbs.items()}
    assert sizes == {"tile_224": (224, 224), "tile_500": (500, 500), "fit_720": (720, 540),
                     "fit_1280": (1280, 960), "fit_1920": (1920, 1440)}


def test_animated_transparent_gif_first_frame_on_white(tmp_path):
    frames = []
    for colour in (1, 2):
        im = Image.new("P", (300, 200), 0)
        im.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * 759)
        im.paste(colour, (100, 50, 200, 150))
        frames.append(im)
    src = tmp_path / "anim.gif"
    frames[0].save(src, save_all=True, append_images=frames[1:], transparency=0, duration=100, loop=0)
    r = _render(src, tmp_path / "thumbs")
    assert (r.width, r.height) == (300, 200) and r.has_alpha
    with Image.open(r.thumbs["fit_720"]) as im:
        assert im.size == (300, 200)
        corner, centre = im.getpixel((5, 5)), im.getpixel((150, 100))
    assert min(corner) > 240  # transparent -> white, not black
    assert centre[0] > 200 and centre[2] < 60  # the first frame (red), not the second (blue)


def test_16_bit_greyscale_png_keeps_its_tones(tmp_path):
    """16-bit scans: mid-grey stays mid-grey instead of everything above 255 turning white."""
    src = tmp_path / "scan16.png"
    ramp = np.linspace(0, 65535, 256 * 100).reshape(100, 256).astype(np.uint16)
    Image.fromarray(ramp).save(src)
    d = decode(src, longest_needed=256, limits=LIMITS)
    assert d.image.mode == "RGB"
    assert d.image.getpixel((0, 0)) == (0, 0, 0)
    assert d.image.getpixel((255, 99)) == (255, 255, 255)
    assert abs(d.image.getpixel((128, 50))[0] - 128) <= 2


# --- RAW: the embedded preview ------------------------------------------------------------------

def _make_dng(preview_jpeg: bytes, orientation: int) -> bytes:
    """A minimal TIFF-based DNG: 16x16 grey 'sensor' data in IFD0 (with Orientation), and a JPEG
    preview in a SubIFD, laid out as cameras do; exiftool reads it as a DNG with PreviewImage."""
    S, L = (lambda v: struct.pack("<H", v)), (lambda v: struct.pack("<I", v))

    def ifd(entries):
        out = struct.pack("<H", len(entries))
        for tag, typ, count, value in sorted(entries):
            out += struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\0")
        return out + L(0)

    sub_off = 8 + 2 + 12 * 13 + 4
    raw_off = sub_off + 2 + 12 * 6 + 4
    jpg_off = raw_off + 256
    ifd0 = [(0x00FE, 4, 1, L(0)), (0x0100, 3, 1, S(16)), (0x0101, 3, 1, S(16)), (0x0102, 3, 1, S(8)),
            (0x0103, 3, 1, S(1)), (0x0106, 3, 1, S(1)), (0x0111, 4, 1, L(raw_off)),
            (0x0112, 3, 1, S(orientation)), (0x0115, 3, 1, S(1)), (0x0116, 3, 1, S(16)),
            (0x0117, 4, 1, L(256)), (0x014A, 4, 1, L(sub_off)), (0xC612, 1, 4, bytes([1, 4, 0, 0]))]
    sub = [(0x00FE, 4, 1, L(1)), (0x0103, 3, 1, S(7)), (0x0106, 3, 1, S(6)),
           (0x0111, 4, 1, L(jpg_off)), (0x0115, 3, 1, S(3)), (0x0117, 4, 1, L(len(preview_jpeg)))]
    return b"II*\0" + L(8) + ifd(ifd0) + ifd(sub) + bytes(range(256)) + preview_jpeg


def exiftool_preview(path: Path) -> bytes | None:
    """What the index passes as raw_preview: ExifTool's embedded preview, JpgFromRaw as fallback."""
    for tag in ("PreviewImage", "JpgFromRaw"):
        out = subprocess.run(["exiftool", "-b", f"-{tag}", str(path)], capture_output=True, timeout=30).stdout
        if out:
            return out
    return None


def test_raw_renders_from_embedded_preview_with_raw_orientation(samples, tmp_path):
    # The preview holds the sideways sensor view of landscape_6 (no EXIF of its own); the
    # orientation lives in the DNG's IFD0, as with real cameras.
    buf = io.BytesIO()
    with Image.open(samples / ORIENT / "landscape_6.jpg") as im:
        im.convert("RGB").save(buf, "JPEG", quality=95, icc_profile=im.info["icc_profile"])
    dng = tmp_path / "IMG_0001.DNG"
    dng.write_bytes(_make_dng(buf.getvalue(), orientation=6))
    assert kind_of(dng) is Kind.RAW
    assert tiff_orientation(dng) == 6

    root = tmp_path / "thumbs"
    got = _render(dng, root, "0000dddd", raw_preview=exiftool_preview)
    ref = _render(copy_sample(samples, f"{ORIENT}/landscape_1.jpg", tmp_path), root, "00001111")
    assert (got.width, got.height) == (600, 450)
    assert got.format == "RAW-PREVIEW"
    a, b = _pixels(ref.thumbs["fit_720"]), _pixels(got.thumbs["fit_720"])
    assert a.shape == b.shape and float(np.abs(a - b).mean()) < 8


def test_raw_without_preview_is_a_decode_error(tmp_path):
    dng = tmp_path / "empty.dng"
    dng.write_bytes(_make_dng(b"", orientation=1))
    with pytest.raises(DecodeError, match="no embedded preview"):
        decode(dng, longest_needed=720, limits=LIMITS, raw_preview=exiftool_preview)


# --- colour management ---------------------------------------------------------------------------

def test_display_p3_is_converted_to_srgb(samples, tmp_path):
    with Image.open(samples / "immich-test-assets/formats/heic/IMG_2682.heic") as im:
        p3 = im.info["icc_profile"]
    assert "P3" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(p3)))
    src = tmp_path / "p3.jpg"
    Image.new("RGB", (64, 64), (200, 120, 60)).save(src, quality=100, icc_profile=p3)
    d = decode(src, longest_needed=64, limits=LIMITS)
    assert d.source_profile and "P3" in d.source_profile
    r, g, b = d.image.getpixel((32, 32))
    # P3 is wider: the same numbers mean a more saturated orange, so sRGB needs more red, less blue.
    assert r >= 210 and b <= 50, (r, g, b)
    out = _render(src, tmp_path / "thumbs")
    with Image.open(out.thumbs["tile_224"]) as im:
        assert "icc_profile" not in im.info
        assert abs(im.getpixel((32, 32))[0] - r) <= 3


def test_srgb_profile_is_left_alone(samples, tmp_path):
    src = tmp_path / "srgb.jpg"
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.new("RGB", (32, 32), (200, 120, 60)).save(src, quality=100, icc_profile=srgb)
    d = decode(src, longest_needed=32, limits=LIMITS)
    assert d.source_profile is None
    assert all(abs(a - b) <= 2 for a, b in zip(d.image.getpixel((16, 16)), (200, 120, 60)))


def test_lab_tiff_is_converted_colour_correctly(tmp_path):
    src = tmp_path / "lab.tif"
    Image.new("LAB", (20, 20), (136, 128 + 80, 128 + 67)).save(src)  # L*53 a*80 b*67: sRGB red
    d = decode(src, longest_needed=20, limits=LIMITS)
    r, g, b = d.image.getpixel((10, 10))
    assert r > 230 and g < 40 and b < 40


# --- bad input --------------------------------------------------------------------------------

BAD_SAMPLES = [
    "exif-samples/jpg/corrupted.jpg",
    *[f"exif-samples/jpg/invalid/{n}" for n in ("image00971.jpg", "image01088.jpg", "image01551.jpg", "image02206.jpg")],
    *[f"exif-samples/jpg/tests/{n}" for n in ("11-tests.jpg", "30-type_error.jpg", "35-empty.jpg",
                                               "42_IndexError.jpg", "45-gps_ifd.jpg", "67-0_length_string.jpg")],
]


@pytest.mark.parametrize("rel", BAD_SAMPLES, ids=lambda r: Path(r).name)
def test_bad_samples_render_or_give_a_reason(samples, tmp_path, rel):
    src = copy_sample(samples, rel, tmp_path)
    try:
        r = _render(src, tmp_path / "thumbs")
    except DecodeError as exc:
        assert str(exc)
    else:
        assert set(r.thumbs) == set(INDEX_SIZES) and all(p.stat().st_size > 0 for p in r.thumbs.values())


def test_truncated_jpeg(samples, tmp_path):
    data = (samples / "exif-samples/jpg/hdr/iphone_hdr_NO.jpg").read_bytes()
    src = tmp_path / "cut.jpg"
    src.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match="truncated JPEG"):
        _render(src, tmp_path / "thumbs")
    assert not list((tmp_path / "thumbs").rglob("*.jpg"))  # nothing half-made left behind


@pytest.mark.parametrize(
    "name,data,reason",
    [
        ("zero.jpg", b"", "empty file"),
        ("noise.jpg", bytes(range(256)) * 40, "unsupported format"),
        ("text.heic", b"hello, not a picture\n" * 10, "unsupported format"),
        ("bad.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "corrupt|unsupported"),
    ],
)
def test_garbage_gives_decode_error(tmp_path, name, data, reason):
    src = tmp_path / name
    src.write_bytes(data)
    with pytest.raises(DecodeError, match=reason):
        decode(src, longest_needed=720, limits=LIMITS)


def test_missing_file_gives_decode_error(tmp_path):
    with pytest.raises(DecodeError, match="cannot read file"):
        decode(tmp_path / "gone.jpg", longest_needed=720, limits=LIMITS)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_png_is_refused(tmp_path):
    src = tmp_path / "bomb.png"
    src.write_bytes(_png_header_only(50000, 50000))
    with pytest.raises(DecodeError, match="decompression bomb"):
        decode(src, longest_needed=720, limits=LIMITS)


def test_own_pixel_limit_is_checked_from_the_header(tmp_path):
    src = tmp_path / "big.png"
    src.write_bytes(_png_header_only(8000, 6000))  # 48 MP: below Pillow's own limit
    with pytest.raises(DecodeError, match=r"decompression bomb: 4\.8e\+07 pixels > limit 4e\+07"):
        decode(src, longest_needed=720, limits=DecodeLimits(max_pixels=40_000_000))


# --- memory ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_100_megapixel_jpeg_renders_in_bounded_memory(tmp_path):
    src = tmp_path / "huge.jpg"
    # Made in a subprocess of its own: Linux carries a process's peak RSS across fork+exec into
    # ru_maxrss, so a 300 MB bitmap built here would be charged to the renderer below.
    make = textwrap.dedent(f"""
        import numpy as np
        from PIL import Image
        rng = np.random.default_rng(7)
        small = Image.fromarray(rng.integers(0, 255, (840, 1200, 3), dtype=np.uint8))
        small.resize((12000, 8400), Image.Resampling.BILINEAR).save({str(src)!r}, quality=85)
    """)
    subprocess.run([sys.executable, "-c", make], check=True, timeout=120)
    script = textwrap.dedent(f"""
        import json, resource, warnings
        from pathlib import Path
        warnings.simplefilter("ignore")  # Pillow warns about > 89 MP images; that is the point
        from PIL import Image
        from daemon.library.decode import DecodeLimits
        from daemon.library.formats import Kind
        from daemon.library.render import render
        from daemon.library.thumbnails import ThumbSettings
        r = render(Path({str(src)!r}), kind=Kind.IMAGE, content_hash="feedbeef",
                   thumbs_root=Path({str(tmp_path / 't')!r}), settings=ThumbSettings(), limits=DecodeLimits())
        hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
        print(json.dumps({{"w": r.width, "h": r.height, "fit_1920": list(Image.open(r.thumbs["fit_1920"]).size),
                           "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "hwm_kb": int(hwm)}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert (res["w"], res["h"]) == (12000, 8400)
    assert res["fit_1920"] == [1920, 1344]
    # A full decode alone would be 302 MB; at 1/4 scale (3000x2100) the bitmap is 19 MB.
    # VmHWM is the renderer's own peak; ru_maxrss is not used: Linux carries the parent's peak
    # (pytest, hundreds of MB late in a full run) across fork+exec into the child's ru_maxrss.
    assert res["hwm_kb"] < 150 * 1024, f"peak RSS of the renderer itself {res['hwm_kb'] / 1024:.0f} MB"

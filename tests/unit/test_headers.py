"""Reading sizes, JPEG layouts and PNG metadata from headers alone (daemon/library/headers.py)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pillow_jxl  # noqa: F401 - registers the JPEG XL writer
import pytest
from PIL import Image

from daemon.library.budget import check_jpeg
from daemon.library.exif import exif_of, read_image
from daemon.library.headers import read_jpeg_layout, read_jxl_size, read_png_metadata
from tests.security import bombs


@pytest.mark.parametrize("size", [(8, 8), (123, 77), (1440, 1080), (4000, 3000), (640, 360), (300, 600)])
@pytest.mark.parametrize("container", [False, True])
def test_jxl_size_comes_from_the_codestream(tmp_path: Path, size: tuple[int, int], container: bool) -> None:
    path = tmp_path / "x.jxl"
    Image.new("RGB", size, (1, 2, 3)).save(path, lossless=True, effort=1, use_container=container)
    with open(path, "rb") as f:
        assert read_jxl_size(f) == size


def test_jxl_sample_size(samples: Path) -> None:
    with open(samples / "immich-test-assets/formats/jxl/8bit-sRGB.jxl", "rb") as f:
        assert read_jxl_size(f) == (1440, 1080)


def test_jxl_size_of_garbage_is_none() -> None:
    assert read_jxl_size(io.BytesIO(b"\xff\x0a")) is None
    assert read_jxl_size(io.BytesIO(b"not an image at all")) is None


def _jpeg(**kw) -> io.BytesIO:
    buf = io.BytesIO()
    Image.effect_noise((640, 480), 50).convert("RGB").save(buf, "JPEG", **kw)
    buf.seek(0)
    return buf


def test_jpeg_layout_of_baseline_and_progressive() -> None:
    base = read_jpeg_layout(_jpeg(quality=90))
    assert base is not None and (base.width, base.height, base.sof) == (640, 480, 0xC0)
    assert base.sampling == ((2, 2), (1, 1), (1, 1)) and not base.buffers_whole_image
    prog = read_jpeg_layout(_jpeg(progressive=True, subsampling=0))
    assert prog is not None and prog.progressive and prog.buffers_whole_image and not prog.arithmetic
    # 4:4:4: 80x60 blocks per component, 64 coefficients of 2 bytes each
    assert prog.coefficient_bytes() == 3 * 80 * 60 * 128


def test_complete_jpegs_pass_and_crafted_headers_do_not(tmp_path: Path) -> None:
    for kw in ({"quality": 90}, {"progressive": True}, {"progressive": True, "subsampling": 0}):
        buf = _jpeg(**kw)
        layout = read_jpeg_layout(buf)
        assert layout is not None
        size = len(buf.getvalue()) - layout.data_offset
        assert check_jpeg(layout, size, max_bytes=1 << 30, max_unverified_bytes=1 << 26) is None
    crafted = bombs.jpeg_bomb(tmp_path / "c.jpg", 14000, 14000, progressive=True)
    with open(crafted, "rb") as f:
        layout = read_jpeg_layout(f)
    assert layout is not None and (layout.width, layout.height) == (14000, 14000)
    verdict = check_jpeg(layout, crafted.stat().st_size - layout.data_offset, max_bytes=1 << 40,
                         max_unverified_bytes=1 << 26)
    assert verdict is not None and "image data ends early" in verdict.reason


def test_arithmetic_progressive_jpeg_gets_the_small_budget(tmp_path: Path) -> None:
    crafted = bombs.jpeg_bomb(tmp_path / "a.jpg", 6000, 6000, progressive=True, arithmetic=True)
    with open(crafted, "rb") as f:
        layout = read_jpeg_layout(f)
    assert layout is not None and layout.arithmetic and layout.min_data_bytes() is None
    verdict = check_jpeg(layout, 10, max_bytes=1 << 40, max_unverified_bytes=64 << 20)
    assert verdict is not None and "arithmetic-coded progressive JPEG" in verdict.reason


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_png_metadata_after_the_image_data_is_read_without_decoding(tmp_path: Path) -> None:
    path = bombs.png_bomb(tmp_path / "b.png", 2000, 2000)  # eXIf after IDAT
    with Image.open(path) as im:
        assert "exif" not in im.info  # Pillow would have to decode to find it
        exif = exif_of(im)
        assert exif[0x010F] == "Bomb Inc"
        assert im.tile, "the pixels must not have been decoded"
        read = read_image(im)
        assert ("make", "Bomb Inc", 0) in read.values
        assert im.tile


def test_png_without_exif_is_not_decoded_to_look_for_one(tmp_path: Path) -> None:
    path = bombs.png_bomb(tmp_path / "b.png", 1000, 1000, exif_after_data=False)
    with Image.open(path) as im:
        assert len(exif_of(im)) == 0
        assert im.tile


def test_png_text_after_data_and_a_ztxt_bomb(tmp_path: Path) -> None:
    xmp = '<x:xmpmeta xmlns:x="adobe:ns:meta/">late</x:xmpmeta>'
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, "PNG")
    data = png.getvalue()
    iend = data.rindex(b"IEND") - 4
    huge = zlib.compress(b"a" * (64 << 20))  # inflates to 64 MiB: over the cap, skipped
    late = (_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + xmp.encode())
            + _chunk(b"zTXt", b"Comment\0\0" + huge))
    meta = read_png_metadata(io.BytesIO(data[:iend] + late + data[iend:]))
    assert meta.text == {"XML:com.adobe.xmp": xmp}

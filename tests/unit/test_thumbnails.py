"""Thumbnail names, geometry, atomic writes and on-demand sizes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daemon.library.decode import DecodeError, DecodeLimits
from daemon.library.formats import Kind
from daemon.library.render import derive_size, render, render_size
from daemon.library.thumbnails import (
    ALL_SIZES,
    INDEX_SIZES,
    ON_DEMAND_SIZES,
    Size,
    ThumbSettings,
    make_thumbnails,
    thumb_path,
    write_atomic,
)
from tests.conftest import copy_sample

HASH = "ab12cd34ef56"
LIMITS = DecodeLimits()


def _render(path: Path, root: Path, settings: ThumbSettings = ThumbSettings(), **kw):
    return render(path, kind=Kind.IMAGE, content_hash=HASH, thumbs_root=root, settings=settings,
                  limits=LIMITS, **kw)


def test_sizes_are_the_documented_ones():
    assert INDEX_SIZES == {"tile_224": Size(224, True), "tile_500": Size(500, True),
                           "fit_720": Size(720), "fit_1280": Size(1280), "fit_1920": Size(1920)}
    assert set(ON_DEMAND_SIZES) == {"fit_2560", "fit_3840"}


def test_thumb_path_layout_and_settings_in_the_name(tmp_path):
    s = ThumbSettings()
    p = thumb_path(tmp_path, HASH, "fit_720", s)
    assert p.parent == tmp_path / "ab" / "12"
    assert p.name == f"{HASH}_fit_720_{s.digest()}.jpg"
    assert thumb_path(tmp_path, HASH, "fit_720", ThumbSettings()) == p  # stable across instances
    other = {
        thumb_path(tmp_path, HASH, "fit_720", ThumbSettings(quality=90)),
        thumb_path(tmp_path, HASH, "fit_720", ThumbSettings(progressive=True)),
        thumb_path(tmp_path, HASH, "fit_720", ThumbSettings(format="webp")),
    }
    assert p not in other and len(other) == 3  # a settings change never reuses a name
    assert thumb_path(tmp_path, HASH, "fit_720", ThumbSettings(format="webp")).suffix == ".webp"


@pytest.mark.parametrize("size,hash_", [("fit_99", HASH), ("fit_720", "../../etc"), ("fit_720", "")])
def test_thumb_path_rejects_unknown_sizes_and_unsafe_hashes(tmp_path, size, hash_):
    with pytest.raises(ValueError):
        thumb_path(tmp_path, hash_, size, ThumbSettings())


def test_settings_are_validated():
    with pytest.raises(ValueError):
        ThumbSettings(format="png")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ThumbSettings(quality=0)


def test_write_atomic_replaces_and_leaves_no_temp_files(tmp_path):
    dest = tmp_path / "a" / "b" / "x.jpg"
    write_atomic(Image.new("RGB", (40, 30), "red"), dest, ThumbSettings())
    write_atomic(Image.new("RGB", (20, 10), "blue"), dest, ThumbSettings())
    with Image.open(dest) as im:
        assert im.size == (20, 10) and im.format == "JPEG"
    assert os.listdir(dest.parent) == ["x.jpg"]


def test_write_atomic_failure_keeps_the_old_file(tmp_path):
    dest = tmp_path / "x.jpg"
    write_atomic(Image.new("RGB", (40, 30), "red"), dest, ThumbSettings())
    before = dest.read_bytes()
    with pytest.raises(Exception):
        write_atomic(Image.new("RGB", (0, 0)), dest, ThumbSettings())  # JPEG cannot hold 0x0
    assert dest.read_bytes() == before
    assert os.listdir(tmp_path) == ["x.jpg"]


def test_small_image_is_never_upscaled(tmp_path):
    src = tmp_path / "small.png"
    Image.new("RGB", (300, 200), "green").save(src)
    r = _render(src, tmp_path / "t")
    got = {k: Image.open(v).size for k, v in r.thumbs.items()}
    assert got == {"tile_224": (200, 200), "tile_500": (200, 200), "fit_720": (300, 200),
                   "fit_1280": (300, 200), "fit_1920": (300, 200)}


def test_tiles_are_centre_crops(tmp_path):
    # Three vertical bands: red | green | blue. The square centre crop shows only green.
    arr = np.zeros((300, 900, 3), dtype=np.uint8)
    arr[:, :300, 0] = 255
    arr[:, 300:600, 1] = 255
    arr[:, 600:, 2] = 255
    out = make_thumbnails(Image.fromarray(arr), width=900, height=300, sizes=INDEX_SIZES)
    tile = np.asarray(out["tile_224"], dtype=np.int16)
    assert tile.shape == (224, 224, 3)
    assert tile[..., 1].mean() > 240 and tile[..., 0].mean() < 10 and tile[..., 2].mean() < 10
    fit = np.asarray(out["fit_720"])
    assert fit.shape == (240, 720, 3)
    assert fit[120, 50, 0] > 240 and fit[120, 670, 2] > 240  # the fit keeps the whole picture


def test_reduced_decode_gives_the_same_sizes_as_a_full_one(samples, tmp_path):
    """Thumbnail sizes come from the photo's full size, not from the draft."""
    src = copy_sample(samples, "exif-samples/jpg/mobile/HMD_Nokia_8.3_5G.jpg", tmp_path)
    r = _render(src, tmp_path / "t")
    got = {k: Image.open(v).size for k, v in r.thumbs.items()}
    assert got == {"tile_224": (224, 224), "tile_500": (500, 500), "fit_720": (720, 309),
                   "fit_1280": (1280, 549), "fit_1920": (1920, 823)}


def test_webp_output(samples, tmp_path):
    src = copy_sample(samples, "immich-test-assets/formats/jpg/el_torcal_rocks.jpg", tmp_path)
    r = _render(src, tmp_path / "t", settings=ThumbSettings(format="webp", quality=75))
    for path in r.thumbs.values():
        assert path.suffix == ".webp"
        with Image.open(path) as im:
            assert im.format == "WEBP"


def test_render_reports_timings_and_keeps_existing_files(samples, tmp_path):
    src = copy_sample(samples, "exif-samples/jpg/hdr/iphone_hdr_NO.jpg", tmp_path)
    first = _render(src, tmp_path / "t")
    assert set(first.timings) == {"decode", "thumbs", "analysis"}
    assert all(v > 0 for v in first.timings.values())
    stamps = {k: p.stat().st_mtime_ns for k, p in first.thumbs.items()}
    os.utime(first.thumbs["fit_720"], ns=(1, 1))
    second = _render(src, tmp_path / "t")
    assert second.thumbs == first.thumbs
    assert second.thumbs["fit_720"].stat().st_mtime_ns == 1  # same name, same bytes: not rewritten
    assert all(second.thumbs[k].stat().st_mtime_ns == stamps[k] for k in stamps if k != "fit_720")


def test_render_size_on_demand_is_cached(samples, tmp_path):
    src = copy_sample(samples, "immich-test-assets/formats/heic/IMG_2682.heic", tmp_path)
    kw = dict(kind=Kind.IMAGE, content_hash=HASH, thumbs_root=tmp_path / "t", settings=ThumbSettings(),
              limits=LIMITS)
    big = render_size(src, size="fit_2560", **kw)
    with Image.open(big) as im:
        assert im.size == (2560, 1920)
    os.utime(big, ns=(1, 1))
    assert render_size(src, size="fit_2560", **kw) == big
    assert big.stat().st_mtime_ns == 1  # served from disk, not made again
    lost = render_size(src, size="tile_224", **kw)  # a missing index size, remade alone
    with Image.open(lost) as im:
        assert im.size == (224, 224)
    with pytest.raises(ValueError):
        render_size(src, size="fit_9999", **kw)


def test_the_grid_size_is_made_from_fit_720_not_the_original(samples, tmp_path):
    src = copy_sample(samples, "immich-test-assets/formats/heic/IMG_2682.heic", tmp_path)
    root, settings = tmp_path / "t", ThumbSettings()
    assert derive_size(root, HASH, "fit_480", settings) is None  # fit_720 not made yet: needs the original
    _render(src, root)
    src.unlink()  # the original is gone: the grid size still comes, from its larger thumbnail
    made = derive_size(root, HASH, "fit_480", settings)
    assert made == thumb_path(root, HASH, "fit_480", settings)
    with Image.open(made) as im, Image.open(thumb_path(root, HASH, "fit_720", settings)) as larger:
        assert im.size == (480, 360) and larger.size == (720, 540)
    assert derive_size(root, HASH, "fit_720", settings) is None  # not a derived size
    assert "fit_480" in ALL_SIZES and "fit_480" not in INDEX_SIZES  # no re-index for existing libraries


def test_render_size_of_a_broken_file_is_a_decode_error(tmp_path):
    src = tmp_path / "broken.jpg"
    src.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(DecodeError):
        render_size(src, kind=Kind.IMAGE, content_hash=HASH, thumbs_root=tmp_path / "t",
                    settings=ThumbSettings(), limits=LIMITS, size="fit_3840")


def test_stale_temp_files_of_interrupted_writes_are_swept(tmp_path):
    from daemon.library.thumbnails import remove_stale_temp_files

    keep = tmp_path / "ab" / "cd" / "abcd_fit_720_x.jpg"
    keep.parent.mkdir(parents=True)
    keep.write_bytes(b"jpeg")
    stale = keep.with_name(f".{keep.name}.0123456789ab.tmp")
    stale.write_bytes(b"half a jpeg")
    assert remove_stale_temp_files(tmp_path) == 1
    assert keep.exists() and not stale.exists()

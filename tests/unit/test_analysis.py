"""Colour names, mono detection, shape, perceptual hash and placeholder from real pixels."""

from __future__ import annotations

import io
from pathlib import Path

import blurhash
import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps

from daemon.library.analysis import analyse, phash, phash_distance, shape_of
from daemon.library.palette import NAMES
from daemon.library.quality import BLURRY_BELOW

NATURE = "immich-test-assets/albums/nature"


def _open(samples: Path, rel: str) -> Image.Image:
    with Image.open(samples / rel) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def _run(img: Image.Image):
    return analyse(img, width=img.width, height=img.height)


@pytest.mark.parametrize(
    "rgb,name",
    [((255, 0, 0), "red"), ((0, 0, 255), "blue"), ((0, 160, 0), "green"), ((255, 140, 0), "orange"),
     ((250, 230, 20), "yellow"), ((0, 0, 0), "black"), ((255, 255, 255), "white"), ((128, 128, 128), "grey"),
     ((110, 60, 20), "brown"), ((255, 170, 190), "pink"), ((130, 40, 200), "purple")],
)
def test_plain_colours_get_their_names(rgb, name):
    a = _run(Image.new("RGB", (120, 90), rgb))
    assert a.main_color == name
    assert a.color_grid == [name] * 9


def test_pure_red_image():
    a = _run(Image.new("RGB", (200, 200), (255, 0, 0)))
    assert (a.main_color, a.mono, a.chroma) == ("red", False, 100)
    assert 0.5 < a.luminance < 0.56  # L* of sRGB red is 53.2


def test_colour_grid_is_row_major():
    img = Image.new("RGB", (300, 300), (128, 128, 128))
    img.paste((255, 0, 0), (0, 0, 100, 100))  # top left
    img.paste((0, 0, 255), (200, 200, 300, 300))  # bottom right
    grid = _run(img).color_grid
    assert grid[0] == "red" and grid[8] == "blue" and grid[4] == "grey"
    assert set(grid) <= set(NAMES)


def test_a_small_red_flower_on_grey_rock_is_red():
    img = Image.new("RGB", (400, 300), (120, 120, 118))
    img.paste((220, 20, 30), (120, 90, 280, 210))  # 16% of the picture
    assert _run(img).main_color == "red"


def test_greyscale_photo_is_mono(samples):
    colour = _open(samples, f"{NATURE}/tanners_ridge.jpg")
    assert _run(colour).mono is False
    grey = _run(colour.convert("L").convert("RGB"))
    assert grey.mono is True and grey.chroma <= 2
    assert grey.main_color in {"black", "grey", "white"}


def test_sepia_toned_photo_is_mono(samples):
    grey = _open(samples, f"{NATURE}/el_torcal_rocks.jpg").convert("L")
    sepia = ImageOps.colorize(grey, (40, 20, 0), (255, 240, 200))
    assert _run(sepia).mono is True


@pytest.mark.parametrize("name", ["cyclamen_persicum.jpg", "wood_anemones.jpg", "prairie_falcon.jpg",
                                  "orychophragmus_violaceus.jpg", "polemonium_reptans.jpg"])
def test_colour_photos_are_not_mono(samples, name):
    assert _run(_open(samples, f"{NATURE}/{name}")).mono is False


def test_sample_colours_are_plausible(samples):
    assert _run(_open(samples, f"{NATURE}/orychophragmus_violaceus.jpg")).main_color == "purple"
    assert _run(_open(samples, f"{NATURE}/cyclamen_persicum.jpg")).main_color == "pink"
    assert _run(_open(samples, "exif-samples/jpg/mobile/HMD_Nokia_8.3_5G.jpg")).main_color == "blue"


@pytest.mark.parametrize(
    "w,h,shape",
    [(3000, 1000, "panorama"), (1000, 3000, "panorama"), (1900, 1000, "panorama"), (1800, 1000, "landscape"),
     (3000, 4000, "portrait"), (1000, 1000, "square"), (1040, 1000, "square"), (1000, 1060, "portrait")],
)
def test_shape(w, h, shape):
    assert shape_of(w, h) == shape


def test_three_to_one_image_is_a_panorama_with_full_megapixels():
    a = analyse(Image.new("RGB", (300, 100), "blue"), width=12000, height=4000)
    assert a.shape == "panorama" and a.megapixels == 48.0


def test_blurhash_decodes_to_the_average_colour(samples):
    img = _open(samples, f"{NATURE}/el_torcal_rocks.jpg")
    a = _run(img)
    assert blurhash.is_valid_blurhash(a.placeholder)
    assert len(a.placeholder) == 4 + 2 * 4 * 3  # 4x3 components
    back = np.asarray(blurhash.decode(a.placeholder, 32, 24), dtype=np.float64)
    mean_back = back.reshape(-1, back.shape[-1])[:, :3].mean(axis=0)
    mean_img = np.asarray(img, dtype=np.float64).reshape(-1, 3).mean(axis=0)
    assert np.abs(mean_back - mean_img).max() < 15, (mean_back, mean_img)


def test_phash_survives_reencoding_and_resizing(samples):
    img = _open(samples, "exif-samples/jpg/hdr/iphone_hdr_NO.jpg")
    buf = io.BytesIO()
    img.resize((img.width // 3, img.height // 3)).save(buf, "JPEG", quality=40)
    small = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    h1, h2 = phash(img), phash(small)
    assert len(h1) == 16 and int(h1, 16) >= 0
    assert phash_distance(h1, h2) <= 6


def test_phash_separates_different_photos(samples):
    names = ["el_torcal_rocks.jpg", "prairie_falcon.jpg", "cyclamen_persicum.jpg", "tanners_ridge.jpg"]
    hashes = [phash(_open(samples, f"{NATURE}/{n}")) for n in names]
    for i in range(len(hashes)):
        for j in range(i + 1, len(hashes)):
            assert phash_distance(hashes[i], hashes[j]) >= 20, (names[i], names[j])


def test_phash_distance_counts_bits():
    assert phash_distance("0000000000000000", "0000000000000000") == 0
    assert phash_distance("0000000000000000", "ffffffffffffffff") == 64
    assert phash_distance("00000000000000f0", "0000000000000010") == 3


def test_blur_lowers_sharpness_below_the_quality_threshold(samples):
    img = _open(samples, f"{NATURE}/tanners_ridge.jpg")
    sharp = _run(img).sharpness
    blurred = _run(img.filter(ImageFilter.GaussianBlur(4))).sharpness
    assert sharp >= BLURRY_BELOW > blurred


def test_a_speck_of_colour_does_not_name_a_grey_picture():
    img = Image.new("RGB", (400, 300), (120, 120, 118))
    img.paste((220, 20, 30), (150, 100, 200, 140))  # under 2%
    assert _run(img).main_color == "grey"

"""Cheap facts about a photo's pixels: colours, lightness, shape, perceptual hash, placeholder,
sharpness.

They feed search ("red", "mono", "panorama"), duplicate finding (phash), the web grid's blurry
placeholder while a tile loads (blurhash) and the quality score (sharpness). All of it works on
small copies (96 px for colours, 512 px for sharpness, 32 px for the hash), so it costs a few
milliseconds next to the decode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import blurhash
import numpy as np
from PIL import Image

from daemon.library import palette

PANORAMA_RATIO = 1.9  # long/short side from which a photo counts as a panorama
SQUARE_TOLERANCE = 0.05  # long/short within 5% of 1 counts as square
COLOUR_EDGE = 96
SHARPNESS_EDGE = 512
PHASH_EDGE = 32

Shape = Literal["panorama", "portrait", "landscape", "square"]


@dataclass
class Analysis:
    main_color: str  # palette name (see palette.NAMES)
    color_grid: list[str]  # 3x3, row-major, palette names
    luminance: float  # 0..1 mean perceived lightness (CIE L*/100)
    chroma: int  # 0..100 mean colourfulness (CIE C*, capped)
    mono: bool  # greyscale, or toned in one hue (sepia, cyanotype)
    shape: Shape
    megapixels: float  # of the FULL photo
    phash: str  # 64-bit DCT perceptual hash, 16 hex chars
    placeholder: str  # blurhash, 4x3 components
    sharpness: float  # variance of the Laplacian of a 512 px grey copy


def analyse(img: Image.Image, *, width: int, height: int) -> Analysis:
    """Analyse an upright RGB image (any size; the index passes a ~720 px thumbnail) of a photo
    whose full size is width x height."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    base = _fit(img, SHARPNESS_EDGE)
    small = _fit(base, COLOUR_EDGE)
    rgb = np.asarray(small)
    lab_l, lab_c, hue = _lch(rgb)
    classes = palette.classify(rgb)

    mono = _is_mono(lab_c, hue)
    main = palette.dominant(classes)
    if mono and float(np.percentile(lab_c, 90)) < 8:
        main = _dominant_neutral(lab_l)
    grey = np.asarray(base.convert("L"), dtype=np.float32)
    return Analysis(
        main_color=main,
        color_grid=_grid(classes),
        luminance=round(float(lab_l.mean()) / 100.0, 4),
        chroma=int(round(min(100.0, float(lab_c.mean())))),
        mono=mono,
        shape=shape_of(width, height),
        megapixels=round(width * height / 1e6, 2),
        phash=phash(base),
        placeholder=_blurhash(small),
        sharpness=round(_laplacian_variance(grey), 2),
    )


def shape_of(width: int, height: int) -> Shape:
    long_side, short_side = max(width, height), max(1, min(width, height))
    ratio = long_side / short_side
    if ratio >= PANORAMA_RATIO:
        return "panorama"
    if ratio <= 1 + SQUARE_TOLERANCE:
        return "square"
    return "landscape" if width > height else "portrait"


def phash(img: Image.Image) -> str:
    """64-bit perceptual hash (the pHash / imagehash algorithm): the 8x8 lowest frequencies of a
    32x32 grey DCT, each bit set when above their median. Survives re-encoding and resizing."""
    grey = img.convert("L").resize((PHASH_EDGE, PHASH_EDGE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    x = np.asarray(grey, dtype=np.float64)
    d = _dct_matrix(PHASH_EDGE)
    coeffs = d @ x @ d.T
    low = coeffs[:8, :8]
    bits = (low > np.median(low)).ravel()
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return f"{value:016x}"


def phash_distance(a: str, b: str) -> int:
    """Hamming distance between two phash strings (0 = same picture, 64 = opposite)."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    return np.cos(np.pi * (2 * i + 1) * k / (2 * n))


def _fit(img: Image.Image, edge: int) -> Image.Image:
    if max(img.size) <= edge:
        return img
    scale = edge / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _lch(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CIE L*, C* and hue (radians) of sRGB pixels (D65)."""
    c = rgb.reshape(-1, 3).astype(np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    l_star = 116 * f[:, 1] - 16
    a = 500 * (f[:, 0] - f[:, 1])
    b = 200 * (f[:, 1] - f[:, 2])
    return l_star, np.hypot(a, b), np.arctan2(b, a)


def _is_mono(chroma: np.ndarray, hue: np.ndarray) -> bool:
    """Greyscale (hardly any chroma anywhere) or toned: the coloured pixels share one hue and
    none is strongly coloured (a sepia print, not a red wall)."""
    p90 = float(np.percentile(chroma, 90))
    if p90 < 8:
        return True
    coloured = chroma > 4
    if p90 > 30 or coloured.sum() < 0.2 * chroma.size:
        return False
    w = chroma[coloured]
    h = hue[coloured]
    concentration = np.hypot((w * np.cos(h)).sum(), (w * np.sin(h)).sum()) / w.sum()
    return bool(concentration > 0.99)


def _dominant_neutral(lab_l: np.ndarray) -> str:
    names = np.where(lab_l > 85, 2, np.where(lab_l < 25, 0, 1))
    return ("black", "grey", "white")[int(np.bincount(names, minlength=3).argmax())]


def _grid(classes: np.ndarray) -> list[str]:
    h, w = classes.shape
    cells = []
    for row in range(3):
        for col in range(3):
            cell = classes[row * h // 3:max((row + 1) * h // 3, row * h // 3 + 1),
                           col * w // 3:max((col + 1) * w // 3, col * w // 3 + 1)]
            cells.append(palette.dominant(cell, min_share=0.3))
    return cells


def _blurhash(small: Image.Image) -> str:
    tiny = _fit(small, 32).copy()  # blurhash.encode closes the image it is given
    return blurhash.encode(tiny, x_components=4, y_components=3)


def _laplacian_variance(grey: np.ndarray) -> float:
    """How much fine detail there is: low for blurred or out-of-focus pictures."""
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    lap = (grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:]
           - 4 * grey[1:-1, 1:-1])
    return float(lap.var())

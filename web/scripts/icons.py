"""Draws the app icons (PNG) from the same shapes as public/icons/logo.svg.

Run once by hand when the logo changes (`.venv/bin/python web/scripts/icons.py`); the PNGs are
committed, so building the app needs no image tool.
"""
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "public" / "icons"


def draw(size: int, maskable: bool) -> Image.Image:
    s = size / 64
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    if maskable:  # full bleed background, logo inside the 80 % safe zone
        d.rectangle((0, 0, size, size), fill="#1f5fbf")
        s *= 0.8
        off = size * 0.1
    else:
        d.rounded_rectangle((0, 0, size - 1, size - 1), radius=14 * s, fill="#1f5fbf")
        off = 0

    def p(x: float, y: float) -> tuple[float, float]:
        return off + x * s, off + y * s

    d.rounded_rectangle((*p(12, 24), *p(52, 54)), radius=4 * s, fill="#f4c542")
    d.rounded_rectangle((*p(9, 15), *p(55, 24)), radius=3 * s, fill="#e0a800")
    d.polygon([p(19, 47), p(28, 36), p(34, 43), p(38, 39), p(45, 47)], fill="#1f5fbf")
    cx, cy = p(41, 33)
    d.ellipse((cx - 3 * s, cy - 3 * s, cx + 3 * s, cy + 3 * s), fill="#1f5fbf")
    return img


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    draw(192, False).save(OUT / "icon-192.png", optimize=True)
    draw(512, False).save(OUT / "icon-512.png", optimize=True)
    draw(512, True).save(OUT / "maskable-512.png", optimize=True)

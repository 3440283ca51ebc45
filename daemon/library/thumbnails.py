"""Thumbnail sizes, their file names, and how they are cut from one decoded image.

Names carry everything that changes the bytes: the photo's content hash, the size name and a
digest of the encoder settings plus a code version. Changing the quality or the format gives
new names, so a stale thumbnail is never served and old ones can be swept by name.

Speed comes from never resizing the full image more than once: outputs are made largest first
and each smaller one is cut from the smallest output already made that still covers it
(fit_1920 -> fit_1280 -> fit_720 -> tile_500 -> tile_224).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Mapping

from PIL import Image

# Bump when the geometry or the resampling of any size changes: every thumbnail gets a new name.
THUMB_CODE_VERSION = 1


@dataclass(frozen=True)
class Size:
    """edge: the bound in pixels; crop: a square centre crop of edge x edge (a grid tile)
    instead of the whole picture with its long side bounded by edge."""

    edge: int
    crop: bool = False

    def target(self, width: int, height: int) -> tuple[int, int]:
        """Output size for a picture of width x height; never larger than the picture."""
        if self.crop:
            side = min(self.edge, width, height)
            return side, side
        long_side = max(width, height)
        if long_side <= self.edge:
            return width, height
        scale = self.edge / long_side
        return max(1, round(width * scale)), max(1, round(height * scale))


INDEX_SIZES: dict[str, Size] = {
    "tile_224": Size(224, crop=True),
    "tile_500": Size(500, crop=True),
    "fit_720": Size(720),
    "fit_1280": Size(1280),
    "fit_1920": Size(1920),
}
# Larger views for big screens: made when first asked for, then cached like the others.
ON_DEMAND_SIZES: dict[str, Size] = {
    "fit_2560": Size(2560),
    "fit_3840": Size(3840),
}
# Grid sizes: the web app's justified rows want 300-480 px images, for which fit_720 is twice the
# bytes a phone needs. Made the first time they are asked for, from fit_720 (a 720 px decode,
# not the original), so a library indexed before they existed needs no re-index: name -> (size,
# the size it is made from).
DERIVED_SIZES: dict[str, tuple[Size, str]] = {
    "fit_480": (Size(480), "fit_720"),
}
ALL_SIZES: dict[str, Size] = {**INDEX_SIZES, **ON_DEMAND_SIZES, **{k: v[0] for k, v in DERIVED_SIZES.items()}}

_HASH_RE = re.compile(r"^[0-9A-Za-z]{4,128}$")


@dataclass(frozen=True)
class ThumbSettings:
    """Encoder settings; everything here changes the bytes written, so all of it is in the digest."""

    format: Literal["jpeg", "webp"] = "jpeg"
    quality: int = 82
    progressive: bool = False  # JPEG only: larger views can load coarse-to-fine
    webp_method: int = 4  # WebP only: 0 fast .. 6 small

    def __post_init__(self) -> None:
        if self.format not in ("jpeg", "webp"):
            raise ValueError(f"thumbnail format must be jpeg or webp, not {self.format!r}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"thumbnail quality must be 1..100, not {self.quality}")
        if not 0 <= self.webp_method <= 6:
            raise ValueError(f"webp_method must be 0..6, not {self.webp_method}")

    @property
    def extension(self) -> str:
        return "jpg" if self.format == "jpeg" else "webp"

    def digest(self) -> str:
        """Short stable hash of the settings and the code version, part of every file name."""
        blob = json.dumps({**asdict(self), "v": THUMB_CODE_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


def thumb_path(root: Path, content_hash: str, size: str, settings: ThumbSettings) -> Path:
    """root/ab/cd/<hash>_<size>_<digest>.<ext>: two levels of fan-out keep directories small.

    Raises ValueError for a size name that is not defined or a hash that could escape root.
    """
    if size not in ALL_SIZES:
        raise ValueError(f"unknown thumbnail size {size!r}")
    if not _HASH_RE.match(content_hash):
        raise ValueError(f"invalid content hash {content_hash!r}")
    h = content_hash.lower()
    name = f"{h}_{size}_{settings.digest()}.{settings.extension}"
    return Path(root) / h[:2] / h[2:4] / name


def write_atomic(img: Image.Image, dest: Path, settings: ThumbSettings) -> None:
    """Encode to a temporary name in the same directory, then rename: a reader (the web server
    sending the file) sees the old file, or none, or the complete new one, never half of it.
    No fsync: a thumbnail lost in a power cut is simply made again."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp")
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    try:
        if settings.format == "jpeg":
            img.save(tmp, "JPEG", quality=settings.quality, progressive=settings.progressive)
        else:
            img.save(tmp, "WEBP", quality=settings.quality, method=settings.webp_method)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temp_files(root: Path) -> int:
    """Delete the temporary files of writes a crash interrupted (`.<name>.<hex>.tmp`, the names
    write_atomic uses). Only safe while nothing writes below root: the App calls it at start-up
    after an unclean stop, holding the data folder's lock. Returns how many were removed."""
    removed = 0
    for folder, _, names in os.walk(root):
        for name in names:
            if name.startswith(".") and name.endswith(".tmp"):
                try:
                    os.unlink(os.path.join(folder, name))
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed


def needs(sizes: Mapping[str, Size]) -> tuple[int, int]:
    """(long side, short side) in pixels a decode must deliver to serve every size."""
    longest = max((s.edge for s in sizes.values() if not s.crop), default=0)
    shortest = max((s.edge for s in sizes.values() if s.crop), default=0)
    return longest, shortest


def make_thumbnails(
    img: Image.Image, *, width: int, height: int, sizes: Mapping[str, Size]
) -> dict[str, Image.Image]:
    """Every size from one upright image (possibly a reduced decode of a width x height photo).

    Target sizes are computed from the FULL size, so a reduced decode gives exactly the same
    dimensions as a full one. Each output is resized from the smallest picture made so far that
    covers it: one big resize, then cheap small ones.
    """
    plan = sorted(sizes.items(), key=lambda kv: _area(kv[1].target(width, height)), reverse=True)
    sources: list[Image.Image] = [img]  # whole pictures (not crops), largest first
    out: dict[str, Image.Image] = {}
    for name, size in plan:
        tw, th = size.target(width, height)
        if size.crop:
            src = _smallest(sources, lambda s: min(s.size) >= tw)
            side = min(src.size)
            left, top = (src.width - side) / 2, (src.height - side) / 2
            box = (left, top, left + side, top + side)
            result = _resize(src, (tw, th), box)
        else:
            src = _smallest(sources, lambda s: s.width >= tw and s.height >= th)
            result = _resize(src, (tw, th), None)
            sources.append(result)
        out[name] = result
    return out


def _resize(src: Image.Image, size: tuple[int, int], box) -> Image.Image:
    if box is None and src.size == size:
        return src
    # reducing_gap: a box reduce() first for big factors, then Lanczos on the rest; visually
    # identical to plain Lanczos at a fraction of the cost.
    return src.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


def _smallest(sources: list[Image.Image], fits) -> Image.Image:
    ok = [s for s in sources if fits(s)]
    return min(ok, key=lambda s: s.width * s.height) if ok else sources[0]


def _area(wh: tuple[int, int]) -> int:
    return wh[0] * wh[1]

"""One decode, every output: thumbnails and pixel analysis of one media file.

The index pipeline calls `render` once per new content hash in a worker thread; the web server
calls `render_size` when a size is missing or a large view is first asked for. Videos go through
a poster frame first and then take exactly the path of a still.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from PIL import Image

from daemon.library.analysis import Analysis, analyse
from daemon.library.decode import DecodeLimits, RawPreviewReader, decode
from daemon.library.formats import Kind
from daemon.library.poster import poster_frame
from daemon.library.thumbnails import (
    ALL_SIZES,
    DERIVED_SIZES,
    INDEX_SIZES,
    Size,
    ThumbSettings,
    make_thumbnails,
    needs,
    thumb_path,
    write_atomic,
)

ANALYSIS_EDGE = 512  # analysis works on a copy this size at most; see analysis.py


@dataclass
class Rendered:
    width: int  # full size after orientation
    height: int
    thumbs: dict[str, Path]  # size name -> written (or already present) file
    analysis: Analysis
    timings: dict[str, float] = field(default_factory=dict)  # seconds: poster, decode, thumbs, analysis
    has_alpha: bool = False
    orientation: int = 1
    format: str = ""


def render(
    path: Path,
    *,
    kind: Kind,
    content_hash: str,
    thumbs_root: Path,
    settings: ThumbSettings,
    limits: DecodeLimits,
    sizes: Mapping[str, Size] = INDEX_SIZES,
    raw_preview: RawPreviewReader | None = None,
    ffmpeg: str = "ffmpeg",
    orientation: int | None = None,
) -> Rendered:
    """Decode `path` once and write every size in `sizes`, then analyse the pixels.

    Thumbnails already on disk under their (hash, size, settings) name are not written again.
    Raises DecodeError for anything that cannot be rendered.
    """
    timings: dict[str, float] = {}
    longest, shortest = needs(sizes)
    longest = max(longest, ANALYSIS_EDGE)
    with _source(path, kind, thumbs_root, ffmpeg, timings) as (src, is_video):
        t0 = time.perf_counter()
        decoded = decode(
            src, longest_needed=longest, shortest_needed=shortest, limits=limits,
            raw_preview=None if is_video else raw_preview, orientation=orientation,
        )
        t1 = time.perf_counter()
        images = make_thumbnails(decoded.image, width=decoded.width, height=decoded.height, sizes=sizes)
        written: dict[str, Path] = {}
        for name, img in images.items():
            dest = thumb_path(thumbs_root, content_hash, name, settings)
            if not dest.exists():
                write_atomic(img, dest, settings)
            written[name] = dest
        t2 = time.perf_counter()
        analysis = analyse(_analysis_source(decoded.image, images, sizes), width=decoded.width,
                           height=decoded.height)
        t3 = time.perf_counter()
    timings.update(decode=t1 - t0, thumbs=t2 - t1, analysis=t3 - t2)
    return Rendered(decoded.width, decoded.height, written, analysis, timings,
                    decoded.has_alpha, decoded.orientation, decoded.format)


def render_size(
    path: Path,
    *,
    kind: Kind,
    content_hash: str,
    thumbs_root: Path,
    settings: ThumbSettings,
    limits: DecodeLimits,
    size: str,
    raw_preview: RawPreviewReader | None = None,
    ffmpeg: str = "ffmpeg",
    orientation: int | None = None,
) -> Path:
    """The file for one size, made now if missing (a large view, or a size lost from disk).

    Raises ValueError for an unknown size name, DecodeError when the file cannot be decoded.
    """
    if size not in ALL_SIZES:
        raise ValueError(f"unknown thumbnail size {size!r}")
    dest = thumb_path(thumbs_root, content_hash, size, settings)
    if dest.exists():
        return dest
    spec = {size: ALL_SIZES[size]}
    longest, shortest = needs(spec)
    with _source(path, kind, thumbs_root, ffmpeg, {}) as (src, is_video):
        decoded = decode(
            src, longest_needed=longest, shortest_needed=shortest, limits=limits,
            raw_preview=None if is_video else raw_preview, orientation=orientation,
        )
        img = make_thumbnails(decoded.image, width=decoded.width, height=decoded.height, sizes=spec)[size]
        write_atomic(img, dest, settings)
    return dest


def derive_size(thumbs_root: Path, content_hash: str, size: str, settings: ThumbSettings) -> Path | None:
    """A grid size (DERIVED_SIZES) made from the larger thumbnail it derives from, if that one is
    on disk; None when `size` is not derived or its source is missing (then the original is
    needed: render_size). Thumbnails are our own files: no decode limits needed."""
    derived = DERIVED_SIZES.get(size)
    if derived is None:
        return None
    spec, source_name = derived
    dest = thumb_path(thumbs_root, content_hash, size, settings)
    if dest.exists():
        return dest
    source = thumb_path(thumbs_root, content_hash, source_name, settings)
    try:
        with Image.open(source) as im:
            im.draft("RGB", spec.target(im.width, im.height))  # JPEG: decode at a reduced scale
            img = im.convert("RGB") if im.mode not in ("RGB", "L", "RGBA") else im.copy()
    except FileNotFoundError:
        return None
    out = make_thumbnails(img, width=img.width, height=img.height, sizes={size: spec})[size]
    write_atomic(out, dest, settings)
    return dest


class _source:
    """Context manager giving the still to decode: the file itself, or a video's poster frame
    in a temporary directory under thumbs_root (same disk, removed afterwards)."""

    def __init__(self, path: Path, kind: Kind, thumbs_root: Path, ffmpeg: str, timings: dict[str, float]):
        self.path, self.kind, self.root, self.ffmpeg, self.timings = Path(path), kind, Path(thumbs_root), ffmpeg, timings
        self.tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> tuple[Path, bool]:
        if self.kind is not Kind.VIDEO:
            return self.path, False
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp = tempfile.TemporaryDirectory(prefix=".poster-", dir=self.root)
        t0 = time.perf_counter()
        try:
            frame = poster_frame(self.path, Path(self.tmp.name), ffmpeg=self.ffmpeg)
        except BaseException:
            self.tmp.cleanup()
            raise
        self.timings["poster"] = time.perf_counter() - t0
        return frame, True

    def __exit__(self, *exc: object) -> None:
        if self.tmp is not None:
            self.tmp.cleanup()


def _analysis_source(full: Image.Image, images: Mapping[str, Image.Image], sizes: Mapping[str, Size]) -> Image.Image:
    """The smallest whole-picture thumbnail that still has ANALYSIS_EDGE px (less work for the
    same answer), else the decoded image."""
    whole = [images[n] for n, s in sizes.items() if not s.crop and max(images[n].size) >= ANALYSIS_EDGE]
    return min(whole, key=lambda im: im.width * im.height) if whole else full

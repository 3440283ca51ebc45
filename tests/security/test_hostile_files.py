"""Hostile image files cost a bounded amount of memory (issue 9 point 6, issue 10 point 4).

Each bomb is put in a library next to one normal photo and indexed by the real index pass
(`App.index_once`, what `shoebox index` runs) in a child process, which then reports its own
peak memory (VmHWM). The bomb must get a clear recorded error, the normal photo must still be
indexed, and the child's peak may exceed that of a child indexing the normal photo alone by
less than 50 MB (100 MB for the crafted progressive and arithmetic-coded JPEG headers).

Before the fix (measured on 35f1858): the 14000x14000 PNG cost +738 MB (its EXIF was looked
for by decoding it), the progressive and arithmetic-coded JPEG headers +596 MB and were indexed
as grey 196 MP photos, a crafted 10000x10000 WebP +371 MB, a crafted AVIF +806 MB, a 5 KB
JPEG XL of 36 MP +174 MB with a 30 MP limit (the plugin decodes inside Image.open).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from PIL import Image

from tests.conftest import REPO
from tests.integration.support import places_template
from tests.security import bombs

# slow: each bomb is indexed in a child process of its own to read its peak memory
pytestmark = pytest.mark.slow

# The child: the real index pass in-process, then its own peak memory and the files table.
CHILD = r"""
import asyncio, json, sys
from pathlib import Path
from tests.integration.support import index, make_config, query

library, data, settings = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
asyncio.run(index(make_config(library, data, **settings)))
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
files = {r["path_text"]: dict(r) for r in query(data, "SELECT path_text, state, error FROM files")}
photos = [dict(r) for r in query(data, "SELECT width, height, thumb_key FROM photos")]
print(json.dumps({"hwm_kb": int(status["VmHWM"].split()[0]), "files": files, "photos": photos}))
"""
# One worker: decodes run one after another, so the peak is that of the dearest file alone.
SETTINGS = {"index__workers": "1", "tagging__enabled": "false"}
NORMAL = "normal.jpg"


@dataclass
class Run:
    hwm_kb: int
    files: dict[str, dict[str, Any]]
    photos: list[dict[str, Any]]


@pytest.fixture(scope="module")
def places_db() -> Path:
    """Built once and copied into every data folder, so no child spends time or memory on it."""
    return places_template()


def index_in_child(tmp: Path, places_db: Path, files: dict[str, Callable[[Path], Path]],
                   **settings: str) -> Run:
    library, data = tmp / "library", tmp / "data"
    library.mkdir()
    data.mkdir()
    shutil.copy2(places_db, data / "places.db")
    Image.effect_noise((800, 600), 40).convert("RGB").save(library / NORMAL, quality=90)
    for name, make in files.items():
        make(library / name)
    out = subprocess.run([sys.executable, "-c", CHILD, str(library), str(data), json.dumps({**SETTINGS, **settings})],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return Run(**json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, places_db: Path) -> Run:
    run = index_in_child(tmp_path_factory.mktemp("baseline"), places_db, {})
    assert run.files[NORMAL]["state"] == "indexed"
    return run


def growth_mb(run: Run, baseline: Run) -> float:
    return (run.hwm_kb - baseline.hwm_kb) / 1024


BOMB_MB = 50
CRAFTED_JPEG_MB = 100  # issue 10: crafted progressive / arithmetic-coded JPEG headers

CASES = [
    # name, maker, expected error, memory bound, extra settings
    pytest.param("bomb.png", lambda p: bombs.png_bomb(p, 14000, 14000), r"too large to decode: 14000x14000",
                 BOMB_MB, {}, id="png-zlib-14000x14000-exif-after-data"),
    pytest.param("bomb.png", lambda p: bombs.png_bomb(p, 10000, 10000), r"too large to decode: a 10000x10000 PNG",
                 BOMB_MB, {"index__max_decode_mib": "128"}, id="png-zlib-10000x10000-over-the-memory-budget"),
    pytest.param("bomb.tif", lambda p: bombs.tiff_bomb(p, 14000, 14000), r"too large to decode: 14000x14000",
                 BOMB_MB, {}, id="tiff-deflate-14000x14000"),
    pytest.param("bomb.jpg", lambda p: bombs.jpeg_bomb(p, 14000, 14000), r"image data ends early: the header claims 14000x14000",
                 BOMB_MB, {}, id="jpeg-baseline-header-14000x14000"),
    pytest.param("bomb.jpg", lambda p: bombs.jpeg_bomb(p, 20000, 15000, keep_data=False),
                 r"decompression bomb: 3e\+08 pixels", BOMB_MB, {}, id="jpeg-header-only-over-max-pixels"),
    pytest.param("bomb.jpg", lambda p: bombs.jpeg_bomb(p, 14000, 14000, progressive=True),
                 r"image data ends early: the header claims 14000x14000", CRAFTED_JPEG_MB, {},
                 id="jpeg-progressive-header-14000x14000"),
    pytest.param("bomb.jpg", lambda p: bombs.jpeg_bomb(p, 9000, 9000, progressive=True, subsampling=0),
                 r"image data ends early: the header claims 9000x9000", CRAFTED_JPEG_MB, {},
                 id="jpeg-progressive-444-header-9000x9000"),
    pytest.param("bomb.jpg", lambda p: bombs.jpeg_bomb(p, 14000, 14000, progressive=True, arithmetic=True),
                 r"arithmetic-coded progressive JPEG too large to decode safely: 14000x14000 needs 560 MiB",
                 CRAFTED_JPEG_MB, {}, id="jpeg-arithmetic-progressive-header-14000x14000"),
    pytest.param("bomb.jpg", lambda p: bombs.jpeg_bomb(p, 6000, 6000, progressive=True, arithmetic=True),
                 r"arithmetic-coded progressive JPEG too large to decode safely: 6000x6000",
                 CRAFTED_JPEG_MB, {}, id="jpeg-arithmetic-progressive-header-6000x6000"),
    pytest.param("bomb.webp", lambda p: bombs.webp_bomb(p, 14000, 14000), r"too large to decode: 14000x14000",
                 BOMB_MB, {}, id="webp-header-14000x14000"),
    pytest.param("bomb.webp", lambda p: bombs.webp_bomb(p, 10000, 10000), r"too large to decode: a 10000x10000 WEBP",
                 BOMB_MB, {}, id="webp-header-10000x10000"),
    pytest.param("bomb.gif", lambda p: bombs.gif_bomb(p, 14000, 14000), r"too large to decode: 14000x14000",
                 BOMB_MB, {}, id="gif-header-14000x14000"),
    pytest.param("bomb.gif", lambda p: bombs.gif_bomb(p, 10000, 10000), r"truncated",
                 BOMB_MB, {}, id="gif-header-10000x10000"),
    pytest.param("bomb.bmp", lambda p: bombs.bmp_bomb(p, 14000, 14000), r"too large to decode: 14000x14000",
                 BOMB_MB, {}, id="bmp-header-14000x14000"),
    pytest.param("bomb.bmp", lambda p: bombs.bmp_bomb(p, 10000, 10000), r"truncated",
                 BOMB_MB, {}, id="bmp-header-10000x10000"),
    pytest.param("bomb.heic", lambda p: bombs.heif_bomb(p, 14000, 14000), r"too large to decode: 14000x14000",
                 BOMB_MB, {}, id="heic-header-14000x14000"),
    pytest.param("bomb.heic", lambda p: bombs.heif_bomb(p, 10000, 10000), r"too large to decode: a 10000x10000 HEIF",
                 BOMB_MB, {}, id="heic-header-10000x10000"),
    pytest.param("bomb.avif", lambda p: bombs.heif_bomb(p, 10000, 10000, fmt="AVIF"),
                 r"too large to decode: a 10000x10000 AVIF", BOMB_MB, {}, id="avif-header-10000x10000"),
    # JPEG XL's plugin decodes inside Image.open: with a 30 MP limit, a 5 KB file of 36 MP must be
    # refused from its codestream header, before the plugin (and before the metadata reader) sees it
    pytest.param("bomb.jxl", lambda p: bombs.jxl_bomb(p, 6000, 6000), r"decompression bomb: 3\.6e\+07 pixels",
                 BOMB_MB, {"index__max_pixels": "30000000"}, id="jxl-uniform-6000x6000-over-max-pixels"),
]


@pytest.mark.parametrize("name, make, reason, bound_mb, settings", CASES)
def test_bomb_is_recorded_as_an_error_within_bounded_memory(
    tmp_path: Path, places_db: Path, baseline: Run, name: str, make: Callable[[Path], Path], reason: str,
    bound_mb: int, settings: dict[str, str],
) -> None:
    run = index_in_child(tmp_path, places_db, {name: make}, **settings)
    bomb = run.files[name]
    assert bomb["state"] == "error" and re.search(reason, bomb["error"] or ""), bomb
    assert run.files[NORMAL]["state"] == "indexed", "the run must go on after the bomb"
    grew = growth_mb(run, baseline)
    assert grew < bound_mb, f"{name}: peak memory grew by {grew:.0f} MB (bound {bound_mb} MB): {bomb['error']}"


def test_arithmetic_jpeg_in_one_scan_is_decoded_at_thumbnail_scale(tmp_path: Path, places_db: Path,
                                                                   baseline: Run) -> None:
    """A sequential arithmetic-coded JPEG needs no coefficient buffer and its data size cannot
    vouch for its header: it is decoded at the scale the thumbnails need, never at full size."""
    run = index_in_child(tmp_path, places_db,
                         {"arith.jpg": lambda p: bombs.jpeg_bomb(p, 14000, 14000, arithmetic=True)})
    assert run.files["arith.jpg"]["state"] in ("indexed", "error"), run.files["arith.jpg"]
    assert run.files[NORMAL]["state"] == "indexed"
    grew = growth_mb(run, baseline)
    assert grew < CRAFTED_JPEG_MB, f"peak memory grew by {grew:.0f} MB"


def test_honest_photo_just_under_max_pixels_is_indexed_cheaply(tmp_path: Path, places_db: Path,
                                                               baseline: Run) -> None:
    """A complete 14000x14000 (196 MP) baseline JPEG is a photo, not a bomb: indexed with its
    real size and thumbnails, decoded at thumbnail scale (a full decode would take 196 MB+)."""
    run = index_in_child(tmp_path, places_db, {"big.jpg": lambda p: bombs.honest_grey_jpeg(p, 14000, 14000)})
    assert run.files["big.jpg"]["state"] == "indexed", run.files["big.jpg"]
    assert {(p["width"], p["height"]) for p in run.photos} == {(14000, 14000), (800, 600)}
    grew = growth_mb(run, baseline)
    assert grew < 150, f"peak memory grew by {grew:.0f} MB"

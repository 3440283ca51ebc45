"""Rescan of an unchanged library of 10,000 files: how long `shoebox index` takes when nothing is
new, which is what every periodic rescan and every start of `shoebox serve` costs.

The rescan cost depends on the number of files (one stat and one row comparison each), not on
their size, so the library is 10,000 distinct small JPEGs (160x120, cut from the samples, each with
its own date and unique id so every hash differs). They are indexed once for real (that time is
reported too), then `shoebox index` runs again on the unchanged folder a few times.

Reported: the process wall time (what a user waits, start-up included), the daemon's elapsed_s
(scan start to idle queue, which for an unchanged library is the scan alone) and last_scan's
finished_at - started_at from `shoebox status --json` (whole seconds only).
"""

from __future__ import annotations

import io
import json
import random
import shutil
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image, ImageOps

from tests.bench.generate import SAMPLES, SOURCES
from tests.bench.util import BENCH_DIR, PROJECT_PYTHON, REPO, BenchError, fresh_dir, run_measured
from tests.bench.bench_index import no_tagging_flags, shoebox_env

TINY_VERSION = 1
TINY_SIZE = (160, 120)


@dataclass
class RescanReport:
    files: int
    library: str
    make_files_s: float | None  # None when the cached folder was reused
    first_index_s: float | None  # daemon elapsed_s of the initial full index; None if cached
    first_index_wall_s: float | None
    first_index_files_per_s: float | None
    rescans: list[dict] = field(default_factory=list)
    rescan_wall_s: float = 0.0  # median
    rescan_elapsed_s: float = 0.0  # median, the scan alone
    last_scan_s: float | None = None  # from status, whole seconds
    rescan_peak_mb: float = 0.0
    notes: list[str] = field(default_factory=list)


def make_tiny_library(folder: Path, count: int, seed: int = 7) -> float:
    """count distinct small JPEGs with EXIF dates, 100 to a folder like a camera's DCIM. Returns
    the seconds it took."""
    started = time.perf_counter()
    import pillow_heif

    pillow_heif.register_heif_opener()
    rng = random.Random(seed)
    bases = []
    for rel in SOURCES:
        with Image.open(SAMPLES / rel) as im:
            im.draft("RGB", (800, 800))
            im = ImageOps.exif_transpose(im).convert("RGB")
            im.thumbnail((640, 640))
            bases.append(im)
    fresh_dir(folder)
    start = datetime(2010, 1, 1)
    for i in range(count):
        base = rng.choice(bases)
        x = rng.randrange(base.width - TINY_SIZE[0])
        y = rng.randrange(base.height - TINY_SIZE[1])
        img = base.crop((x, y, x + TINY_SIZE[0], y + TINY_SIZE[1]))
        gain = rng.uniform(0.9, 1.1)
        img = img.point(lambda v, g=gain: min(255, int(v * g)))
        when = start + timedelta(seconds=rng.randrange(15 * 365 * 86400))
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = "Apple", "iPhone 6"
        ifd = exif.get_ifd(0x8769)
        ifd[0x9003] = when.strftime("%Y:%m:%d %H:%M:%S")
        ifd[0xA420] = f"shoebox-bench-tiny-{i:06d}"
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85, exif=exif.tobytes())
        path = folder / f"{i // 1000:02d}" / f"{100 + i // 100 % 10:03d}APPLE" / f"IMG_{i:05d}.JPG"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buf.getvalue())
    return time.perf_counter() - started


def _index(library: Path, data: Path, workers: int, stats: Path, flags: list[str]) -> tuple[dict, float, float]:
    cmd = [str(PROJECT_PYTHON), "-m", "daemon", "index", "--library", str(library), "--data", str(data),
           "--workers", str(workers), "--quiet", "--stats-json", str(stats), *flags]
    m = run_measured(cmd, env=shoebox_env(), cwd=REPO, timeout_s=1800)
    return json.loads(stats.read_text()), m.wall_s, m.peak_tree_mb


def _last_scan_s(library: Path, data: Path) -> float | None:
    done = subprocess.run([str(PROJECT_PYTHON), "-m", "daemon", "status", "--json", "--library", str(library),
                           "--data", str(data)], capture_output=True, text=True, cwd=REPO, env=shoebox_env())
    if done.returncode != 0:
        return None
    scan = json.loads(done.stdout).get("last_scan") or {}
    try:
        a = datetime.fromisoformat(scan["started_at"].replace("Z", "+00:00"))
        b = datetime.fromisoformat(scan["finished_at"].replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError):
        return None
    return (b - a).total_seconds()


def bench_rescan(count: int = 10_000, *, workers: int = 2, repeats: int = 3, bench_dir: Path = BENCH_DIR,
                 log=print) -> RescanReport:
    """Make (or reuse) the small-file library and its index, then time unchanged rescans.

    Both the files and the indexed data folder are cached under bench_dir/rescan-COUNT, keyed by
    the daemon's migrations and this module's version, so later runs only pay for the rescans; a
    changed schema or a --fresh run (delete the folder) indexes again."""
    root = bench_dir / f"rescan-{count}"
    library, data = root / "library", root / "data"
    stats = root / "stats.json"
    flags = no_tagging_flags(PROJECT_PYTHON)
    migrations = sorted(p.name for p in (REPO / "daemon" / "store" / "migrations").glob("*.sql"))
    key = {"version": TINY_VERSION, "count": count, "migrations": migrations}
    key_path = root / "key.json"
    cached = key_path.exists() and json.loads(key_path.read_text()) == key and data.exists()
    report = RescanReport(files=count, library=str(library), make_files_s=None, first_index_s=None,
                          first_index_wall_s=None, first_index_files_per_s=None)
    if not cached:
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        log(f"rescan: making {count} small JPEGs in {library}")
        report.make_files_s = round(make_tiny_library(library, count), 1)
        log(f"rescan: first full index of {count} files ({workers} workers)")
        data.mkdir()
        first, wall, _ = _index(library, data, workers, stats, flags)
        if first["counts"].get("errors"):
            report.notes.append(f"first index: {first['counts']['errors']} errors")
        if int(first["files"]) != count:
            raise BenchError(f"first index saw {first['files']} files, expected {count}")
        report.first_index_s = round(float(first["elapsed_s"]), 1)
        report.first_index_wall_s = round(wall, 1)
        report.first_index_files_per_s = round(count / float(first["elapsed_s"]), 1)
        key_path.write_text(json.dumps(key))
        log(f"  {report.first_index_s} s ({report.first_index_files_per_s} files/s)")
    else:
        report.notes.append("files and first index reused from the cache")
    walls, elapsed, peaks = [], [], []
    for n in range(repeats):
        run, wall, peak = _index(library, data, workers, stats, flags)
        if run["files"]:
            report.notes.append(f"rescan {n + 1} indexed {run['files']} files: the library was not unchanged")
        report.rescans.append({"wall_s": round(wall, 2), "elapsed_s": round(float(run["elapsed_s"]), 2),
                               "scan": run.get("scan"), "peak_tree_mb": round(peak, 1)})
        walls.append(wall)
        elapsed.append(float(run["elapsed_s"]))
        peaks.append(peak)
        log(f"rescan {n + 1}: {wall:.2f} s wall, {float(run['elapsed_s']):.2f} s scan")
    report.rescan_wall_s = round(statistics.median(walls), 2)
    report.rescan_elapsed_s = round(statistics.median(elapsed), 2)
    report.rescan_peak_mb = round(max(peaks), 1)
    report.last_scan_s = _last_scan_s(library, data)
    return report


if __name__ == "__main__":
    import sys

    print(json.dumps(asdict(bench_rescan(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)), indent=2))

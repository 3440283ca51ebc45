"""How long the test suite takes: `pytest -m "not slow"` (the fast loop while working) and, with
--full, the whole main pytest that `make test` runs (everything but the browser tests).

    .venv/bin/python -m tests.bench.bench_tests            # the fast loop only
    .venv/bin/python -m tests.bench.bench_tests --full     # and the whole main pytest after it

Each run is a real pytest in a subprocess (the same command a developer types), timed from the
outside. Its summary line gives the counts; `--durations` lists the slowest tests, the first
place to look when the loop gets slower. Like every benchmark here it prints figures and
decides nothing: on a shared machine a single run is a figure, not a verdict.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field

from tests.bench.util import REPO

PYTEST = [sys.executable, "-m", "pytest"]
# The browser tests run in a pytest of their own in `make test` (see the Makefile) and need the
# built web app; they are not part of either figure.
COMMON = ["--ignore=tests/e2e", "-q"]
BUDGET_S = 20 * 60  # what `make test` may take in CI, all of it
COUNTED = ("passed", "failed", "errors", "error", "skipped", "xfailed", "xpassed", "deselected")


@dataclass
class SuiteRun:
    """One pytest run: its command, wall time, exit code and the counts of its summary line."""

    name: str
    args: list[str]
    wall_s: float = 0.0
    returncode: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    slowest: list[str] = field(default_factory=list)

    @property
    def tests(self) -> int:
        return sum(n for k, n in self.counts.items() if k != "deselected")


def parse_summary(output: str) -> dict[str, int]:
    """The counts of pytest's last summary line ("871 passed, 85 deselected in 300.1s")."""
    lines = [l for l in output.splitlines() if re.search(r"\b(passed|failed|errors?|deselected)\b", l) and " in " in l]
    if not lines:
        return {}
    counts: dict[str, int] = {}
    for n, word in re.findall(r"(\d+) (\w+)", lines[-1]):
        if word in COUNTED:
            counts["errors" if word == "error" else word] = int(n)
    return counts


def run_suite(name: str, args: list[str], durations: int) -> SuiteRun:
    run = SuiteRun(name, [*COMMON, *args, f"--durations={durations}"])
    print(f"== {name}: pytest {' '.join(run.args)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    proc = subprocess.run([*PYTEST, *run.args], cwd=REPO, capture_output=True, text=True)
    run.wall_s = time.monotonic() - started
    run.returncode = proc.returncode
    run.counts = parse_summary(proc.stdout)
    section = proc.stdout.split("slowest", 1)[1].splitlines()[1:] if "slowest" in proc.stdout else []
    run.slowest = [l for l in section if re.match(r"\s*\d+\.\d+s ", l)][:durations]
    if proc.returncode not in (0, 1):  # 1: some test failed (still a timing); anything else: pytest broke
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
    return run


def report(runs: list[SuiteRun]) -> None:
    print(f"{'run':<12} {'wall':>9} {'tests':>6}  counts")
    for r in runs:
        counts = ", ".join(f"{n} {k}" for k, n in r.counts.items())
        print(f"{r.name:<12} {r.wall_s / 60:>6.1f} min {r.tests:>6}  {counts} (exit {r.returncode})")
    full = next((r for r in runs if r.name == "full"), None)
    if full is not None:
        print(f"the whole main pytest uses {full.wall_s / BUDGET_S:.0%} of make test's 20-minute budget "
              "(vitest, the browser tests and the plain-Pillow pixel tests come on top)")
    for r in runs:
        if r.slowest:
            print(f"\nslowest in {r.name}:")
            print("\n".join(r.slowest))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="also time the whole main pytest (about 15 minutes)")
    ap.add_argument("--durations", type=int, default=15, help="how many of the slowest tests to list")
    ap.add_argument("paths", nargs="*", default=[], help="test paths (default: everything under tests/)")
    args = ap.parse_args(argv)
    runs = [run_suite("not slow", ["-m", "not slow", *args.paths], args.durations)]
    if args.full:
        runs.append(run_suite("full", list(args.paths), args.durations))
    report(runs)
    return 0 if all(r.returncode == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

"""What the connection limits and web-origin checks cost (issue 9, points 2 and 5), in one run.

    .venv/bin/python -m tests.bench.bench_limits [--duration 5] [--rounds 2] [--connections 32]
                                                 [--pipelined 10000] [--requests 60] [--skip-store]

1. Requests/s, this checkout against the previous main (commit PREVIOUS_MAIN, before the limits),
   in the same run: the previous main is checked out with `git worktree add` into a temporary
   folder and its `shoebox serve` runs with the same venv (its folder first on the module path);
   the worktree is removed at the end. Each version indexes the API benchmark's files (every
   sample JPEG, tests/bench/bench_api.py) into its own data folder with its own `shoebox index`,
   and wrk (Debian) drives the same thumbnail URLs (thumbnails-only app token in `?t=`, as an
   <img> tag) against the thumbnail port and against the API port (aiohttp, every middleware).
   The two versions take turns, in alternating order each round, and the median of the rounds
   is compared. Target: this checkout >= 0.95 x the previous main (the limits cost < 5 %).
   Requests/s on a shared, busy machine swing by 2x between runs of the same build, so the
   daemon's own CPU time per answered request (user + system, from /proc, over each wrk run)
   is reported beside it: it depends far less on what else the machine does.
2. Search latency on the 100,000-photo store of tests/bench/bench_search.py (cached in .bench/),
   served by this checkout, with the thumbnail files of part 1 copied in: median and p95 of a
   few typical searches through the API, first on an idle daemon, then while another client
   pipelines batches of `--pipelined` thumbnail requests on one connection (sending and reading
   at once, as fast as the daemon answers).

Prints figures; asserts nothing (figures from a shared machine are not verdicts).
"""

from __future__ import annotations

import argparse

import psutil
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.bench.bench_api import SERVE_FLAGS, cached_thumbs, run_wrk, wrk_script
from tests.bench.bench_search import ensure_store
from tests.bench.util import BenchError, Table, fmt, machine
from tests.conftest import SAMPLES, copy_sample
from tests.integration.api_support import PASSWORD, http_json
from tests.integration.support import REPO, free_port
from tests.integration.test_api_latency import Latency, measure_latency

PREVIOUS_MAIN = "f4b6f50"  # main before the limits (issue 9)
TARGET_RATIO = 0.95
SEARCHES = {
    "first page (60)": "/api/v1/photos?limit=60",
    "label:beach": "/api/v1/photos?limit=60&q=label:beach",
    "year:2015 month:7": "/api/v1/photos?limit=60&q=year:2015%20month:7",
    "free text 'sunset'": "/api/v1/photos?limit=60&q=sunset",
    "camera:canon iso:1600-": "/api/v1/photos?limit=60&q=camera:canon%20iso:1600-",
}


def run_shoebox(code: Path, *args: str, stdin: str | None = None, timeout: float = 600) -> None:
    """`shoebox ARGS` from the code in folder `code` (this checkout or the previous main's worktree)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOEBOX_")}
    env["PYTHONPATH"] = str(code)
    proc = subprocess.run([sys.executable, "-m", "daemon", *args], cwd=code, env=env, input=stdin, text=True,
                          capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise BenchError(f"shoebox {' '.join(args)} ({code}) failed: {proc.stderr[-2000:]}")


class Serve:
    """`shoebox serve` from the code in folder `code`, on free loopback ports."""

    def __init__(self, code: Path, library: Path, data: Path) -> None:
        self.code, self.library, self.data = code, library, data
        self.port, self.thumbs_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.thumbs_base = f"http://127.0.0.1:{self.thumbs_port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "Serve":
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOEBOX_")}
        env["PYTHONPATH"] = str(self.code)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "serve", "--library", str(self.library), "--data", str(self.data),
             "--server-host", "127.0.0.1", "--server-port", str(self.port), "--server-thumbnail-port",
             str(self.thumbs_port), "--index-watch", "false", "--tagging-enabled", "false",
             "--zeroconf-enabled", "false", *SERVE_FLAGS],
            cwd=self.code, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if http_json("GET", f"{self.base}/api/v1/health")[0] == 200:
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise BenchError(f"shoebox serve ({self.code}) exited: "
                                 f"{self.proc.stderr.read().decode()[-2000:] if self.proc.stderr else ''}")
            time.sleep(0.2)
        self.__exit__()
        raise BenchError(f"shoebox serve ({self.code}) did not answer within 60 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tokens(self) -> tuple[str, str]:
        """(access token, thumbnails-only app token) of the admin."""
        status, body = http_json("POST", f"{self.base}/api/v1/auth/login", {"username": "admin", "password": PASSWORD})
        if status != 200:
            raise BenchError(f"login failed: {status} {body}")
        access = body["access_token"]
        status, made = http_json("POST", f"{self.base}/api/v1/auth/tokens", {"name": "bench", "scopes": ["thumbnails"]},
                                 token=access)
        if status != 201:
            raise BenchError(f"no app token: {status} {made}")
        return access, made["token"]


@contextmanager
def previous_main(root: Path, commit: str = PREVIOUS_MAIN) -> Iterator[Path]:
    """A worktree of `commit`, removed afterwards whatever happens."""
    path = root / "shoebox-prev"
    subprocess.run(["git", "worktree", "add", "--detach", str(path), commit], cwd=REPO, check=True,
                   capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=REPO, capture_output=True)


def indexed_copy(code: Path, library: Path, data: Path) -> None:
    """The API benchmark's files indexed by `code`'s own `shoebox index`, with an admin."""
    run_shoebox(code, "index", "--library", str(library), "--data", str(data), "--tagging-enabled", "false", "--quiet")
    run_shoebox(code, "users", "add", "admin", "--role", "admin", "--password-stdin", "--library", str(library),
                "--data", str(data), stdin=PASSWORD + "\n")


# -- 1. requests/s against the previous main -----------------------------------------------------


def bench_throughput(root: Path, *, duration: float, rounds: int, connections: int,
                     previous: str = PREVIOUS_MAIN) -> dict[str, object]:
    library = root / "library"
    for path in sorted((SAMPLES / "exif-samples" / "jpg").rglob("*.jpg")):
        copy_sample(SAMPLES, str(path.relative_to(SAMPLES)), library / path.parent.name)
    rps: dict[tuple[str, str], list[float]] = {}
    cpu_us: dict[tuple[str, str], list[float]] = {}
    errors: dict[tuple[str, str], int] = {}
    with previous_main(root, previous) as prev:
        versions = {"previous main": prev, "this checkout": REPO}
        datas = {name: root / f"data-{i}" for i, name in enumerate(versions)}
        for name, code in versions.items():
            indexed_copy(code, library, datas[name])
        with Serve(prev, library, datas["previous main"]) as old, Serve(REPO, library, datas["this checkout"]) as new:
            servers = {"previous main": old, "this checkout": new}
            scripts = {}
            for name, server in servers.items():
                _, token = server.tokens()
                urls = [f"/api/v1/t/{key}/{size}?t={token}" for key, size, _ in cached_thumbs(datas[name])]
                if not urls:
                    raise BenchError("indexing made no thumbnails")
                scripts[name] = wrk_script(root / f"{name.replace(' ', '-')}.lua", urls)
            for r in range(rounds):
                order = list(servers) if r % 2 == 0 else list(reversed(servers))
                for port_name in ("thumbnail port", "API port"):
                    for name in order:
                        server = servers[name]
                        base = server.thumbs_base if port_name == "thumbnail port" else server.base
                        run_wrk("warm-up", base, scripts[name], duration=1, connections=connections, threads=1)
                        assert server.proc is not None
                        proc = psutil.Process(server.proc.pid)
                        before = proc.cpu_times()
                        result = run_wrk(name, base, scripts[name], duration=duration, connections=connections,
                                         threads=1)
                        after = proc.cpu_times()
                        used = (after.user - before.user) + (after.system - before.system)
                        answered = max(1.0, result.requests_per_s * duration)
                        rps.setdefault((port_name, name), []).append(result.requests_per_s)
                        cpu_us.setdefault((port_name, name), []).append(used / answered * 1e6)
                        errors[(port_name, name)] = errors.get((port_name, name), 0) + result.errors
    return {"rps": rps, "cpu_us": cpu_us, "errors": errors, "thumbs": len(cached_thumbs(datas["this checkout"]))}


# -- 2. search latency while a client pipelines thumbnail requests -----------------------------------


class Pipeliner:
    """One connection that pipelines batches of `batch` thumbnail requests, sending and reading at
    once (a sender thread and a reader thread), until stopped."""

    def __init__(self, port: int, urls: list[str], batch: int) -> None:
        self.port, self.batch = port, batch
        self.requests = [f"GET {u} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode() for u in urls]
        self.stop = threading.Event()
        self.answered = 0
        self.not_ok = 0
        self.batches = 0
        self.seconds = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> "Pipeliner":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(timeout=120)

    def _run(self) -> None:
        started = time.monotonic()
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
            with sock:
                while not self.stop.is_set():
                    payload = b"".join(self.requests[i % len(self.requests)] for i in range(self.batch))
                    sender = threading.Thread(target=sock.sendall, args=(payload,), daemon=True)
                    sender.start()
                    self._read(sock, self.batch)
                    sender.join()
                    self.batches += 1
        except BaseException as exc:  # reported by the caller
            self.error = exc
        self.seconds = time.monotonic() - started

    def _read(self, sock: socket.socket, n: int) -> None:
        buf = b""
        for _ in range(n):
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise BenchError("the thumbnail server closed the pipelining connection")
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                self.not_ok += 1
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            while len(buf) < length:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise BenchError("the thumbnail server closed the pipelining connection")
                buf += chunk
            buf = buf[length:]
            self.answered += 1


def bench_search_under_pipelining(root: Path, *, pipelined: int, requests: int) -> dict[str, object]:
    source = ensure_store(100_000)
    library, data = root / "store-library", root / "store-data"
    library.mkdir(parents=True)
    data.mkdir(parents=True)
    shutil.copyfile(source, data / "shoebox.db")
    if (source.parent / "places.db").exists():
        shutil.copyfile(source.parent / "places.db", data / "places.db")
    thumbs_from = root / "data-1" / "thumbs"  # this checkout's thumbnails from part 1 (or made now)
    if not thumbs_from.is_dir():
        thumbs_library, thumbs_data = root / "thumb-library", root / "thumb-data"
        for path in sorted((SAMPLES / "exif-samples" / "jpg").rglob("*.jpg")):
            copy_sample(SAMPLES, str(path.relative_to(SAMPLES)), thumbs_library / path.parent.name)
        indexed_copy(REPO, thumbs_library, thumbs_data)
        thumbs_from = thumbs_data / "thumbs"
    shutil.copytree(thumbs_from, data / "thumbs")
    run_shoebox(REPO, "users", "add", "admin", "--role", "admin", "--password-stdin", "--library", str(library),
                "--data", str(data), stdin=PASSWORD + "\n")
    with Serve(REPO, library, data) as server:
        access, thumb_token = server.tokens()
        urls = [f"/api/v1/t/{key}/{size}?t={thumb_token}" for key, size, _ in cached_thumbs(data)]
        idle = {name: measure_latency(server.base, access, path, requests=requests, warmup=5)
                for name, path in SEARCHES.items()}
        with Pipeliner(server.thumbs_port, urls, pipelined) as pipeliner:
            while pipeliner.answered < min(pipelined, 1000) and pipeliner.error is None:  # the load is on
                time.sleep(0.05)
            loaded = {name: measure_latency(server.base, access, path, requests=requests, warmup=5)
                      for name, path in SEARCHES.items()}
            while pipeliner.batches < 1 and pipeliner.error is None:  # at least one whole batch overlapped
                time.sleep(0.1)
        if pipeliner.error is not None:
            raise BenchError(f"the pipelining client failed: {pipeliner.error!r}")
    return {"idle": idle, "loaded": loaded, "answered": pipeliner.answered, "not_ok": pipeliner.not_ok,
            "seconds": pipeliner.seconds, "batches": pipeliner.batches}


# -- report -------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=2, help="turns each version takes per port")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--pipelined", type=int, default=10_000, help="thumbnail requests per pipelined batch")
    ap.add_argument("--requests", type=int, default=60, help="timed requests per search")
    ap.add_argument("--previous", default=PREVIOUS_MAIN, help="the commit to compare with")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-store", action="store_true")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    (REPO / ".bench").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shoebox-bench-limits-", dir=REPO / ".bench") as tmp:
        root = Path(tmp)
        if not args.skip_throughput:
            t = bench_throughput(root, duration=args.duration, rounds=args.rounds, connections=args.connections,
                                 previous=args.previous)
            print(f"\nRequests/s, {t['thumbs']} thumbnails cycled, wrk -t1 -c{args.connections} -d{args.duration:g}s, "
                  f"{args.rounds} round(s) each, median; previous main = {args.previous}")
            table = Table(["port", "req/s previous", "req/s this", "ratio", "target", "CPU us/req previous",
                           "CPU us/req this", "CPU ratio (previous/this)", "errors"])
            rps: dict[tuple[str, str], list[float]] = t["rps"]  # type: ignore[assignment]
            cpu: dict[tuple[str, str], list[float]] = t["cpu_us"]  # type: ignore[assignment]
            errors: dict[tuple[str, str], int] = t["errors"]  # type: ignore[assignment]
            for port_name in ("thumbnail port", "API port"):
                old = statistics.median(rps[(port_name, "previous main")])
                new = statistics.median(rps[(port_name, "this checkout")])
                old_cpu = statistics.median(cpu[(port_name, "previous main")])
                new_cpu = statistics.median(cpu[(port_name, "this checkout")])
                table.add(port_name, fmt(old, 0), fmt(new, 0), fmt(new / old, 3), f">= {TARGET_RATIO}",
                          fmt(old_cpu, 1), fmt(new_cpu, 1), fmt(old_cpu / new_cpu, 3),
                          f"{errors[(port_name, 'previous main')]}/{errors[(port_name, 'this checkout')]}")
            print(table.render())
            for (port_name, name), values in sorted(rps.items()):
                print(f"  {port_name}, {name}: req/s " + ", ".join(fmt(v, 0) for v in values)
                      + "; CPU us/req " + ", ".join(fmt(v, 1) for v in cpu[(port_name, name)]))
        if not args.skip_store:
            s = bench_search_under_pipelining(root, pipelined=args.pipelined, requests=args.requests)
            rate = s["answered"] / s["seconds"] if s["seconds"] else None  # type: ignore[operator]
            print(f"\nSearch on the 100,000-photo store, idle and while one client pipelines batches of "
                  f"{args.pipelined:,} thumbnail requests ({s['answered']:,} answered in {fmt(s['seconds'])} s, "
                  f"{fmt(rate, 0)}/s, {s['not_ok']} not 200):")
            table = Table(["search", "p50 idle ms", "p95 idle ms", "p50 pipelining ms", "p95 pipelining ms"])
            idle: dict[str, Latency] = s["idle"]  # type: ignore[assignment]
            loaded: dict[str, Latency] = s["loaded"]  # type: ignore[assignment]
            for name in SEARCHES:
                table.add(name, fmt(idle[name].p50_ms, 2), fmt(idle[name].p95_ms, 2), fmt(loaded[name].p50_ms, 2),
                          fmt(loaded[name].p95_ms, 2))
            print(table.render())


if __name__ == "__main__":
    main()

"""API benchmark: thumbnail serving against nginx, idle memory with a 100k store, query latencies.

    .venv/bin/python -m tests.bench.bench_api [--duration 8] [--connections 32] [--skip-store]

1. Thumbnails: the sample JPEGs are indexed by the real `shoebox index`; `shoebox serve` then
   serves every cached thumbnail it made, authenticated as an <img> tag is (a thumbnails-only app
   token as `?t=`), first on its thumbnail port (daemon/api/thumbserver.py, what the web app
   uses), the same with HTTPS on (`server.https`, TLS on the thumbnail port), then the same URLs on
   its API port (aiohttp); nginx (Debian's, started here as our own process with its own config file
   on a free port, sendfile on) serves the very same files. wrk (Debian) drives both on loopback
   in the same run, cycling through the same thumbnails, with the same threads and connections.
   nginx runs twice: with one worker process (like Shoebox's one event loop) and with one per
   core (how nginx is usually deployed). Target: Shoebox >= 0.5 x nginx.
2. Memory: `shoebox serve` on a copy of the 100,000-photo store that tests/bench/bench_search.py
   generates directly in SQLite (cached in .bench/search-100000.db), with an empty library, no
   first scan and no tagging; its RSS once idle, and again after the queries. Target: < 120 MB.
3. Latency: a few typical photo queries through the API on that store (one kept-alive
   connection, after a warm-up): median and p95.

Prints figures; asserts nothing (figures from a shared machine are not verdicts).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.bench.bench_search import ensure_store
from tests.bench.util import BenchError, Table, fmt, machine
from tests.conftest import copy_sample
from tests.integration.api_support import Daemon, create_admin, http_json
from tests.integration.support import REPO, free_port, shoebox
from tests.integration.test_api_latency import measure_latency
from tests.integration.test_https import HttpsDaemon

SAMPLES = Path("/work/shared/samples")
TARGET_RATIO = 0.5
TARGET_RSS_MB = 120.0
WRK = shutil.which("wrk") or "/usr/bin/wrk"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
THUMB_NAME = re.compile(r"^([0-9a-f]+)_([a-z]+_\d+)_[0-9a-f]+\.(webp|jpg|jpeg)$")
SERVE_FLAGS = ("--index-scan-on-start", "false", "--index-rescan-interval", "0")


@dataclass
class WrkResult:
    name: str
    requests_per_s: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    errors: int
    transfer_mb_s: float | None


# -- thumbnails ---------------------------------------------------------------------------------


def thumb_library(root: Path) -> tuple[Path, Path]:
    """(library, data): every sample JPEG, indexed by the real command line."""
    library, data = root / "library", root / "data"
    for path in sorted((SAMPLES / "exif-samples" / "jpg").rglob("*.jpg")):
        copy_sample(SAMPLES, str(path.relative_to(SAMPLES)), library / path.parent.name)
    shoebox("index", "--library", str(library), "--data", str(data), "--tagging-enabled", "false", "--quiet",
            timeout=600)
    return library, data


def cached_thumbs(data: Path) -> list[tuple[str, str, Path]]:
    """(thumb_key, size, file) of every thumbnail on disk."""
    out = []
    for path in sorted((data / "thumbs").rglob("*")):
        m = THUMB_NAME.match(path.name)
        if m and path.is_file():
            out.append((m.group(1), m.group(2), path))
    return out


def wrk_script(path: Path, urls: list[str]) -> Path:
    """A wrk Lua script that cycles through urls (paths with their query)."""
    items = ",\n".join(json.dumps(u) for u in urls)
    path.write_text("local paths = {\n" + items + "\n}\nlocal i = 0\n"
                    "request = function()\n  i = i % #paths + 1\n  return wrk.format(\"GET\", paths[i])\nend\n")
    return path


def _ms(text: str) -> float | None:
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    if not m:
        return None
    value = float(m.group(1))
    return value / 1000 if m.group(2) == "us" else value * 1000 if m.group(2) == "s" else value


def run_wrk(name: str, base: str, script: Path, *, duration: float, connections: int, threads: int) -> WrkResult:
    cmd = [WRK, f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency", "-s", str(script), base]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
    out = proc.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None:
        raise BenchError(f"wrk printed no Requests/sec:\n{out}")
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    mb_s = None
    if transfer:
        mb_s = float(transfer.group(1)) * {"B": 1e-6, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}.get(transfer.group(2), 1.0)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(x) for x in sock.groups()) if sock else 0)
    return WrkResult(name, float(rps.group(1)), _ms(p50.group(1)) if p50 else None,
                     _ms(p99.group(1)) if p99 else None, errors, mb_s)


class Nginx:
    """nginx as our own process: a config file in a temp dir, `daemon off`, a free port."""

    def __init__(self, root: Path, docroot: Path, workers: str) -> None:
        self.prefix = root / f"nginx-{workers}"
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        user = "user root root;\n" if os.geteuid() == 0 else ""  # workers must read the temp dir's files
        conf = self.prefix / "nginx.conf"
        conf.write_text(
            f"{user}worker_processes {workers};\npid {self.prefix}/nginx.pid;\nerror_log {self.prefix}/error.log warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 1000000;\n"
            "  types { image/webp webp; image/jpeg jpg jpeg; }\n"
            f"  server {{\n    listen 127.0.0.1:{self.port};\n    root {docroot};\n"
            "    location / { add_header Cache-Control \"private, max-age=31536000, immutable\"; }\n  }\n}\n")
        self.conf = conf
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "Nginx":
        self.proc = subprocess.Popen([NGINX, "-c", str(self.conf), "-p", str(self.prefix), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"nginx exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1)
            except urllib.error.HTTPError:
                return self  # answering (403/404 for the bare root is fine)
            except OSError:
                time.sleep(0.05)
                continue
            return self
        raise BenchError("nginx did not start listening")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


BARE_APP = """
import sys
from pathlib import Path
from aiohttp import web
root = Path(sys.argv[1]).resolve()
async def send(request):
    path = (root / request.match_info["tail"]).resolve()
    if root not in path.parents or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "private, max-age=31536000, immutable"})
app = web.Application()
app.router.add_get("/{tail:.+}", send)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), access_log=None, print=None)
"""


class BareAiohttp:
    """The ceiling for any aiohttp view: the same files through a bare FileResponse, no auth,
    no middlewares, no validation (what the Python side costs before Shoebox adds anything)."""

    def __init__(self, root: Path, docroot: Path) -> None:
        self.script = root / "bare_aiohttp.py"
        self.script.write_text(BARE_APP)
        self.docroot = docroot
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "BareAiohttp":
        self.proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "python"), str(self.script), str(self.docroot),
                                      str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"bare aiohttp exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            try:
                urllib.request.urlopen(self.base + "/", timeout=1)
            except urllib.error.HTTPError:
                return self
            except OSError:
                time.sleep(0.1)
                continue
            return self
        raise BenchError("bare aiohttp did not start listening")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def bench_thumbnails(root: Path, *, duration: float, connections: int, threads: int) -> dict[str, object]:
    library, data = thumb_library(root)
    thumbs = cached_thumbs(data)
    if not thumbs:
        raise BenchError("indexing made no thumbnails")
    create_admin(library, data)
    results: list[WrkResult] = []
    with Daemon(library, data, *SERVE_FLAGS) as daemon:
        session = daemon.login()
        token = daemon.app_token(session["access_token"], ["thumbnails"], name="bench wall")
        shoebox_urls = [f"/api/v1/t/{key}/{size}?t={token}" for key, size, _ in thumbs]
        for url in shoebox_urls[:3]:
            with urllib.request.urlopen(daemon.base + url, timeout=10) as resp:
                assert resp.status == 200, url
        nginx_urls = ["/" + str(p.relative_to(data / "thumbs")) for _, _, p in thumbs]
        s_script = wrk_script(root / "shoebox.lua", shoebox_urls)
        n_script = wrk_script(root / "nginx.lua", nginx_urls)
        run_wrk("warm-up", daemon.thumbs_base, s_script, duration=2, connections=connections, threads=threads)
        results.append(run_wrk("shoebox serve, thumbnail port", daemon.thumbs_base, s_script, duration=duration,
                               connections=connections, threads=threads))
        run_wrk("warm-up", daemon.base, s_script, duration=2, connections=connections, threads=threads)
        results.append(run_wrk("shoebox serve, API port (aiohttp)", daemon.base, s_script, duration=duration,
                               connections=connections, threads=threads))
        rss_under_load = psutil.Process(daemon.proc.pid).memory_info().rss / 2**20 if daemon.proc else None
    # the same daemon and URLs with HTTPS on (the default for users: daemon/system/tls.py); wrk keeps
    # its connections alive, so this is the cost of encrypting, not of handshakes
    with HttpsDaemon(library, data, *SERVE_FLAGS) as secure:
        https_thumbs = f"https://127.0.0.1:{secure.thumbs_port}"
        run_wrk("warm-up", https_thumbs, s_script, duration=2, connections=connections, threads=threads)
        results.insert(1, run_wrk("shoebox serve, thumbnail port, HTTPS", https_thumbs, s_script,
                                  duration=duration, connections=connections, threads=threads))
    with BareAiohttp(root, data / "thumbs") as bare:
        run_wrk("warm-up", bare.base, n_script, duration=2, connections=connections, threads=threads)
        results.append(run_wrk("bare aiohttp FileResponse", bare.base, n_script, duration=duration,
                               connections=connections, threads=threads))
    for workers in ("1", "auto"):
        with Nginx(root, data / "thumbs", workers) as nginx:
            base = f"http://127.0.0.1:{nginx.port}"
            with urllib.request.urlopen(base + nginx_urls[0], timeout=10) as resp:
                assert resp.status == 200
            run_wrk("warm-up", base, n_script, duration=2, connections=connections, threads=threads)
            results.append(run_wrk(f"nginx, worker_processes {workers}", base, n_script, duration=duration,
                                   connections=connections, threads=threads))
    sizes = sorted({s for _, s, _ in thumbs})
    mean_kb = sum(p.stat().st_size for _, _, p in thumbs) / len(thumbs) / 1024
    return {"results": results, "thumbs": len(thumbs), "sizes": sizes, "mean_kb": mean_kb,
            "rss_after_load_mb": rss_under_load}


# -- memory and latency with a 100k store ---------------------------------------------------------


def bench_store(root: Path, *, n: int = 100_000, requests: int = 60) -> dict[str, object]:
    source = ensure_store(n)
    library, data = root / "store-library", root / "store-data"
    library.mkdir(parents=True)
    data.mkdir(parents=True)
    shutil.copyfile(source, data / "shoebox.db")
    places = source.parent / "places.db"
    if places.exists():  # saves building the offline places index again
        shutil.copyfile(places, data / "places.db")
    create_admin(library, data)
    with Daemon(library, data, *SERVE_FLAGS) as daemon:
        assert daemon.proc is not None
        proc = psutil.Process(daemon.proc.pid)
        time.sleep(5)
        rss_idle = proc.memory_info().rss / 2**20
        token = daemon.login()["access_token"]
        status, page = http_json("GET", f"{daemon.base}/api/v1/photos?limit=1", token=token)
        if status != 200 or not page["photos"]:
            raise BenchError(f"the store answers no photos: {status} {page}")
        status, deep = http_json("GET", f"{daemon.base}/api/v1/photos?limit=500", token=token)
        cursor = deep["next_cursor"]
        paths = {
            "first page (60)": "/api/v1/photos?limit=60",
            "label:beach": "/api/v1/photos?limit=60&q=label:beach",
            "year:2015 month:7": "/api/v1/photos?limit=60&q=year:2015%20month:7",
            "free text 'sunset'": "/api/v1/photos?limit=60&q=sunset",
            "camera:canon iso:1600-": "/api/v1/photos?limit=60&q=camera:canon%20iso:1600-",
            "second page (cursor)": f"/api/v1/photos?limit=60&cursor={cursor}",
            "one photo": f"/api/v1/photos/{page['photos'][0]['id']}",
            "status": "/api/v1/status",
        }
        latencies = {name: measure_latency(daemon.base, token, path, requests=requests, warmup=5)
                     for name, path in paths.items()}
        time.sleep(2)
        rss_after = proc.memory_info().rss / 2**20
        peak = _hwm(proc.pid)
    return {"n": n, "rss_idle_mb": rss_idle, "rss_after_queries_mb": rss_after, "peak_mb": peak,
            "latencies": latencies, "db_mb": source.stat().st_size / 2**20}


def _hwm(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# -- report ---------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (the machine has few cores)")
    ap.add_argument("--skip-thumbs", action="store_true")
    ap.add_argument("--skip-store", action="store_true")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="shoebox-bench-api-", dir=REPO / ".bench") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o755)
        if not args.skip_thumbs:
            t = bench_thumbnails(root, duration=args.duration, connections=args.connections, threads=args.threads)
            results: list[WrkResult] = t["results"]  # type: ignore[assignment]
            print(f"\nThumbnails: {t['thumbs']} cached files ({', '.join(t['sizes'])}; mean {t['mean_kb']:.1f} KiB),"
                  f" wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s on loopback")
            table = Table(["server", "requests/s", "p50 ms", "p99 ms", "MB/s", "errors", "thumbnail port / this"])
            ours = results[0].requests_per_s
            for r in results:
                table.add(r.name, fmt(r.requests_per_s, 0), fmt(r.latency_p50_ms, 2), fmt(r.latency_p99_ms, 2),
                          fmt(r.transfer_mb_s, 1), r.errors, fmt(ours / r.requests_per_s, 2))
            print(table.render())
            print(f"target: shoebox >= {TARGET_RATIO} x nginx; shoebox RSS after the load: "
                  f"{fmt(t['rss_after_load_mb'])} MB")
        if not args.skip_store:
            s = bench_store(root)
            print(f"\n`shoebox serve` with a {s['n']:,}-photo store ({s['db_mb']:.0f} MB database), empty library, "
                  "no first scan, no tagging:")
            print(f"  RSS idle: {s['rss_idle_mb']:.1f} MB (target < {TARGET_RSS_MB:.0f} MB); after the queries: "
                  f"{s['rss_after_queries_mb']:.1f} MB; peak (VmHWM): {fmt(s['peak_mb'])} MB")
            table = Table(["query", "requests", "p50 ms", "p95 ms", "max ms"])
            for name, lat in s["latencies"].items():  # type: ignore[union-attr]
                table.add(name, lat.requests, fmt(lat.p50_ms, 2), fmt(lat.p95_ms, 2), fmt(lat.max_ms, 1))
            print(table.render())


if __name__ == "__main__":
    main()

"""Backup of the 100,000-photo store while searches run: how long it takes, and what it does to
search latency (p95 during the backup against idle) and to the writer (longest write).

Real parts: the store tests/bench/bench_search.py generates (`.bench/search-100000.db`, copied
into a scratch data folder in WAL mode), the daemon's own Database (one writer, three readers),
the real search engine for the reads, and `daemon.backup.make.make_backup` in a thread, as the
scheduled backup runs.

    .venv/bin/python -m tests.bench.bench_backup [--size 100000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from daemon.backup.make import make_backup
from daemon.search import search
from daemon.store.db import Database
from tests.bench.bench_search import ensure_store, queries


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values)


async def load(db: Database, qs: list[tuple[str, str, str]], until: threading.Event | float,
               writes: list[float]) -> list[float]:
    """Searches from 3 concurrent clients and one small write every 50 ms until `until`."""
    latencies: list[float] = []

    def done() -> bool:
        return until.is_set() if isinstance(until, threading.Event) else time.monotonic() > until

    async def client(k: int) -> None:
        i = k
        while not done():
            _, q, order = qs[i % len(qs)]
            t0 = time.perf_counter()
            await db.read(lambda c: search(c, q, order=order, limit=60))
            latencies.append((time.perf_counter() - t0) * 1000)
            i += 3

    async def writer() -> None:
        while not done():
            t0 = time.perf_counter()
            await db.execute_write("INSERT OR REPLACE INTO meta (key, value) VALUES ('bench.tick', ?)", (str(t0),))
            writes.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.05)

    await asyncio.gather(*(client(k) for k in range(3)), writer())
    return latencies


async def main(size: int, seconds: float) -> None:
    store = ensure_store(size)
    with tempfile.TemporaryDirectory(prefix="shoebox-bench-backup-", dir=store.parent) as tmp:
        data, dest = Path(tmp) / "data", Path(tmp) / "usb"
        data.mkdir()
        dest.mkdir()
        shutil.copy(store, data / "shoebox.db")
        db = await Database.open(data / "shoebox.db", readers=3)
        try:
            qs = await db.read(queries)
            idle_writes: list[float] = []
            idle = await load(db, qs, time.monotonic() + seconds, idle_writes)
            finished = threading.Event()
            result: dict[str, object] = {}

            def backup() -> None:
                try:
                    result["r"] = make_backup(db_path=data / "shoebox.db", data=data, destination=dest,
                                              config_file=None, library=None)
                finally:
                    finished.set()

            busy_writes: list[float] = []
            thread = threading.Thread(target=backup)
            t0 = time.perf_counter()
            thread.start()
            during = await load(db, qs, finished, busy_writes)
            elapsed = time.perf_counter() - t0
            thread.join()
        finally:
            await db.close()
        r = result["r"]
        mb = r.bytes / 1e6  # type: ignore[attr-defined]
        print(f"store: {size:,} photos, {mb:.0f} MB")
        print(f"backup while searching and writing: {elapsed:.1f} s ({mb / elapsed:.0f} MB/s)")
        print(f"search p95 idle: {p95(idle):.1f} ms ({len(idle)} searches); during the backup: "
              f"{p95(during):.1f} ms ({len(during)} searches)")
        print(f"longest write idle: {max(idle_writes):.1f} ms; during the backup: {max(busy_writes):.1f} ms "
              f"({len(busy_writes)} writes)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=5.0, help="how long to measure idle searches")
    args = ap.parse_args()
    asyncio.run(main(args.size, args.seconds))

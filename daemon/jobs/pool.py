"""The bounded worker pool: where every CPU step (hashing, decoding, resizing, inference) runs.

Why threads, not processes: Pillow, libjpeg, numpy, hashlib and the TFLite interpreter all
release the GIL in their heavy parts, and threads share one copy of each model and library in
memory, which is what makes tagging fit in a 2 GB Raspberry Pi.

Why niced threads: on Linux `nice` is per thread, so each worker lowers its own priority when it
starts and the event loop's thread (the web server) keeps the CPU whenever it needs it, even with
every core busy indexing.

Some resources must not be shared between threads (an ExifTool process, a TFLite interpreter,
an SQLite connection): `resource(name, factory)` gives each worker thread its own, created on
first use and closed when the pool shuts down.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class WorkerPool:
    """A fixed number of niced worker threads; `await pool.run(fn, *args)` runs fn in one."""

    def __init__(self, workers: int, *, nice: int = 10, name: str = "worker") -> None:
        self.workers = max(1, workers)
        self.nice = nice
        self._local = threading.local()
        self._resources: list[tuple[str, Any]] = []
        self._resources_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix=name, initializer=self._init_thread
        )
        self.busy = 0

    def _init_thread(self) -> None:
        if self.nice and hasattr(os, "setpriority"):
            try:
                # PRIO_PROCESS with a thread id sets that thread's nice value on Linux.
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
            except OSError as exc:  # pragma: no cover - a container may forbid it
                log.debug("could not lower worker priority: %s", exc)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        self.busy += 1
        try:
            return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))
        finally:
            self.busy -= 1

    def resource(self, name: str, factory: Callable[[], T]) -> T:
        """The calling worker thread's own instance of a resource, created on first use."""
        value = getattr(self._local, name, None)
        if value is None:
            value = factory()
            setattr(self._local, name, value)
            with self._resources_lock:
                self._resources.append((name, value))
        return value

    def drop_resources(self, name: str) -> None:
        """Close every thread's instance of a resource (e.g. models unloaded after idle time).
        Threads notice on next use only through the resource's own state, so only use this for
        resources whose close() leaves them reusable (they reopen lazily)."""
        with self._resources_lock:
            for rname, value in self._resources:
                if rname == name and hasattr(value, "close"):
                    value.close()

    async def shutdown(self) -> None:
        """Finish running tasks, then close every per-thread resource."""
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)
        with self._resources_lock:
            resources, self._resources = self._resources, []
        for name, value in resources:
            close = getattr(value, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:  # pragma: no cover - best effort at shutdown
                    log.warning("closing %s failed: %s", name, exc)

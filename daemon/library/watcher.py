"""Watches the library with inotify (watchfiles) so new files are indexed within seconds.

Changes are batched (watchfiles debounces them) and turned into a partial scan of the folders
they touched, which the normal scanner handles: the watcher decides nothing itself. If the library
folder disappears (a drive unplugged) the watch ends; it is retried until the folder is back, and
the periodic rescan covers anything missed in between.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Awaitable, Callable

from watchfiles import awatch

log = logging.getLogger(__name__)


def changed_folders(root: Path, paths: set[str]) -> list[bytes]:
    """The folders (relative, as bytes) to rescan for a set of changed absolute paths: the nearest
    existing folder of each, with folders inside another one dropped."""
    root_b = os.fsencode(root)
    folders: set[bytes] = set()
    for p in paths:
        path = os.fsencode(p)
        if not path.startswith(root_b):
            continue
        rel = path[len(root_b):].lstrip(b"/")
        # a changed file: rescan its folder; a changed folder: rescan the folder itself
        candidate = rel if os.path.isdir(path) else rel.rpartition(b"/")[0]
        while candidate and not os.path.isdir(os.path.join(root_b, candidate)):
            candidate = candidate.rpartition(b"/")[0]
        folders.add(candidate)
    if b"" in folders:
        return [b""]
    ordered = sorted(folders)
    result: list[bytes] = []
    for f in ordered:
        if not any(f.startswith(r + b"/") for r in result):
            result.append(f)
    return result


class LibraryWatcher:
    def __init__(self, root: Path, on_change: Callable[[list[bytes]], Awaitable[object]],
                 *, debounce_ms: int = 800, retry_s: float = 10.0) -> None:
        self.root = root
        self.on_change = on_change
        self.debounce_ms = debounce_ms
        self.retry_s = retry_s
        self._stop = asyncio.Event()
        self.active = False

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            if not self.root.is_dir():
                self.active = False
                await self._sleep(self.retry_s)
                continue
            try:
                self.active = True
                async for changes in awatch(self.root, stop_event=self._stop, debounce=self.debounce_ms,
                                            recursive=True, ignore_permission_denied=True):
                    folders = changed_folders(self.root, {path for _, path in changes})
                    if folders:
                        try:
                            await self.on_change(folders)
                        except Exception:  # a failed partial scan must not end the watch
                            log.exception("scan after a change failed")
            except (FileNotFoundError, OSError, RuntimeError) as exc:
                log.warning("watching %s stopped (%s); retrying in %.0f s", self.root, exc, self.retry_s)
            self.active = False
            await self._sleep(self.retry_s)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

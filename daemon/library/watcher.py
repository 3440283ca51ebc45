"""Watches the library with inotify (watchfiles) so new files are indexed within seconds.

Changes are batched (watchfiles debounces them) and turned into a partial scan of the folders
they touched, which the normal scanner handles: the watcher decides nothing itself, and every scan
it asks for passes the scanner's unplugged/empty/swapped-volume guard.

inotify watches an inode, not a name. When the library folder is renamed away and an empty one
made in its place, or an empty file system is mounted over it (the common "drive gone" shapes),
the old watch goes on reporting the old folder's events under the library's name, or nothing at
all. So the watcher keeps the library folder's identity (device and inode) and checks it every
few seconds and after every batch: when it changes or the folder is gone, the watch ends, is
started again on whatever is there now, and a scan of the whole root follows (which the guard
refuses while the library is not the one it knew, and which re-queues everything that waited
once it is back).
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path
from typing import Awaitable, Callable

from watchfiles import awatch

log = logging.getLogger(__name__)

RETRY_S = 10.0  # after the watch itself failed (e.g. out of inotify watches)


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
                 *, debounce_ms: int = 800, check_s: float = 2.0) -> None:
        self.root = root
        self.on_change = on_change
        self.debounce_ms = debounce_ms
        self.check_s = check_s  # how often the library folder's identity is checked
        self._stop = asyncio.Event()
        self.active = False

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        watched: tuple[int, int] | None = None  # the folder the last watch was on
        absent = False  # the folder was gone since the last watch (it may come back as the same one)
        while not self._stop.is_set():
            identity = await self._identity()
            if identity is None:
                self.active = False
                absent = watched is not None
                await self._sleep(self.check_s)
                continue
            # the folder came back, or another one is there now: look at all of it, once the new
            # watch is in place (a file written between that scan and the watch would be missed)
            rescan = watched is not None and (absent or identity != watched)
            watched, absent = identity, False
            ended = asyncio.Event()  # set when the folder changes identity or the watcher stops
            monitor = asyncio.create_task(self._monitor(identity, ended), name="watcher-identity")
            watch = awatch(self.root, stop_event=ended, debounce=self.debounce_ms, recursive=True,
                           ignore_permission_denied=True)
            batches = watch.__aiter__()
            next_batch: asyncio.Future[set] | None = None
            failed = False
            try:
                self.active = True
                # the generator sets up inotify (and starts recording) before its first await
                next_batch = asyncio.ensure_future(batches.__anext__())
                await asyncio.sleep(0)
                if rescan:
                    log.info("library folder %s changed (unplugged, replaced or back): scanning it", self.root)
                    await self._changed([b""])
                while True:
                    try:
                        changes = await next_batch
                    except StopAsyncIteration:
                        break
                    if await self._identity() != identity:
                        log.warning("library folder %s was replaced or removed: watching it again", self.root)
                        break  # these paths may be the old folder's, reported under the library's name
                    folders = changed_folders(self.root, {path for _, path in changes})
                    if folders:
                        await self._changed(folders)
                    next_batch = asyncio.ensure_future(batches.__anext__())
            except (FileNotFoundError, OSError, RuntimeError) as exc:
                log.warning("watching %s stopped (%s); retrying in %.0f s", self.root, exc, RETRY_S)
                failed = True
            finally:
                ended.set()
                if next_batch is not None:
                    await asyncio.gather(next_batch, return_exceptions=True)  # ends within a step
                await watch.aclose()
                monitor.cancel()
                await asyncio.gather(monitor, return_exceptions=True)
                self.active = False
            if failed:
                await self._sleep(RETRY_S)

    async def _changed(self, folders: list[bytes]) -> None:
        try:
            await self.on_change(folders)
        except Exception:  # a failed scan must not end the watch
            log.exception("scan after a change failed")

    async def _identity(self) -> tuple[int, int] | None:
        """(device, inode) of the library folder, or None if it is not a folder now. In a thread:
        a stat on a dropped network share may hang, the event loop must not."""
        def stat_root() -> tuple[int, int] | None:
            try:
                st = os.stat(self.root)
            except OSError:
                return None
            return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None

        return await asyncio.to_thread(stat_root)

    async def _monitor(self, identity: tuple[int, int], ended: asyncio.Event) -> None:
        """End the current watch when the watcher stops or the folder is no longer the same one."""
        while not self._stop.is_set():
            await self._sleep(self.check_s)
            if self._stop.is_set() or await self._identity() != identity:
                break
        ended.set()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

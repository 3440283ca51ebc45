"""Thumbnail bytes for the web: find or make the file, and keep the hot ones in memory.

One owner for "give me thumbnail <key>/<size>", shared by the API route (`/api/v1/t/...` on
the main port), share links, and the dedicated thumbnail server (daemon/api/thumbserver.py).

Why a memory cache when the kernel already caches files: a photo grid asks for dozens of
thumbnails at once, again on every scroll, and on this stack a file response costs two thread
hops (stat, open) plus sendfile bookkeeping per request. Measured on the development machine
(aiohttp 3.14, 43 KB JPEGs, wrk -c32): FileResponse 4,900 requests/s, the same bytes from
memory 27,800. Thumbnails are small and immutable (named by content hash and encoder
settings), so a bounded LRU of their bytes is safe to keep and never needs invalidating.
Files larger than `max_item` are not cached and go out with sendfile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from daemon.library.thumbnails import ALL_SIZES, ThumbSettings, thumb_path

log = logging.getLogger(__name__)

THUMB_KEY = re.compile(r"^[0-9a-f]{8,128}$")
CONTENT_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp", "avif": "image/avif",
                 "png": "image/png"}


class ThumbnailRequestError(ValueError):
    """A key or size no thumbnail can have (checked before any lookup or file access)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Thumb:
    """One thumbnail ready to send: `body` is None when the file is too big to keep in memory."""

    path: Path
    etag: str
    content_type: str
    size: int
    body: bytes | None


def check_request(thumb_key: str, size: str) -> None:
    if size not in ALL_SIZES:
        raise ThumbnailRequestError(f"unknown size {size!r}; sizes: {', '.join(ALL_SIZES)}", "size")
    if not THUMB_KEY.match(thumb_key):
        raise ThumbnailRequestError("thumb_key must be a lower-case hex content hash", "thumb_key")


class ByteCache:
    """An LRU of thumbnails bounded by total bytes. Event-loop only (no locking needed)."""

    def __init__(self, max_bytes: int, max_item: int) -> None:
        self.max_bytes = max(0, max_bytes)
        self.max_item = max(0, min(max_item, self.max_bytes))
        self._items: OrderedDict[tuple[str, str], Thumb] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str]) -> Thumb | None:
        thumb = self._items.get(key)
        if thumb is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return thumb

    def put(self, key: tuple[str, str], thumb: Thumb) -> None:
        if thumb.body is None or len(thumb.body) > self.max_item:
            return
        old = self._items.pop(key, None)
        if old is not None and old.body is not None:
            self.bytes -= len(old.body)
        self._items[key] = thumb
        self.bytes += len(thumb.body)
        while self.bytes > self.max_bytes and self._items:
            _, evicted = self._items.popitem(last=False)
            self.bytes -= len(evicted.body or b"")

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)


def _read(path: Path, max_item: int) -> tuple[int, bytes | None]:
    """(size, bytes or None when too big to cache); runs in a thread: disk access stays off the loop."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        return size, (f.read() if size <= max_item else None)


class ThumbnailService:
    """Finds, makes and caches thumbnails. `render_missing(key, size)` makes a missing size (in the
    worker pool) and returns its path; concurrent requests for the same missing size share one
    render, because a page of <img> tags asks for the same thumbnails at once."""

    def __init__(self, root: Path, settings: ThumbSettings,
                 render_missing: Callable[[str, str], Awaitable[Path]], *,
                 cache_bytes: int, max_item: int) -> None:
        self.root = root
        self.settings = settings
        self.render_missing = render_missing
        self.cache = ByteCache(cache_bytes, max_item)
        self._inflight: dict[tuple[str, str], asyncio.Future[Thumb]] = {}
        ext = settings.extension
        self.content_type = CONTENT_TYPES.get(ext, "application/octet-stream")

    def cached(self, thumb_key: str, size: str) -> Thumb | None:
        """The thumbnail if its bytes are in memory (no I/O, for the fast path)."""
        return self.cache.get((thumb_key, size))

    async def get(self, thumb_key: str, size: str) -> Thumb:
        """The thumbnail, read or made as needed. Raises ThumbnailRequestError for an impossible
        key/size, and whatever render_missing raises when a size cannot be made."""
        check_request(thumb_key, size)
        key = (thumb_key, size)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        job = self._inflight.get(key)
        if job is None:
            job = asyncio.ensure_future(self._load(thumb_key, size))
            self._inflight[key] = job
            job.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(job)

    def _finished(self, key: tuple[str, str], job: "asyncio.Future[Thumb]") -> None:
        self._inflight.pop(key, None)
        if not job.cancelled():
            job.exception()  # retrieved here too: every requester may have gone before it failed

    async def _load(self, thumb_key: str, size: str) -> Thumb:
        path = thumb_path(self.root, thumb_key, size, self.settings)
        loop = asyncio.get_running_loop()
        try:
            length, body = await loop.run_in_executor(None, _read, path, self.cache.max_item)
        except FileNotFoundError:
            path = await self.render_missing(thumb_key, size)
            length, body = await loop.run_in_executor(None, _read, path, self.cache.max_item)
        thumb = Thumb(path=path, etag=f'"{path.stem}"', content_type=self.content_type, size=length, body=body)
        self.cache.put((thumb_key, size), thumb)
        return thumb

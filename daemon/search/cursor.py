"""Opaque page cursors: where the last page ended, in the order it was sorted by.

A cursor is base64url JSON: the order, which segment of it (dated photos, then undated ones),
the sort keys of the last photo, the random seed, and a fingerprint of the query, so a cursor
pasted onto another query or order is refused instead of silently skipping photos.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from daemon.search.errors import SearchError

MAX_CURSOR_CHARS = 1024


@dataclass(frozen=True)
class Cursor:
    order: str
    segment: int
    keys: tuple[Any, ...]
    fingerprint: str
    seed: int | None = None

    def encode(self) -> str:
        data = {"o": self.order, "s": self.segment, "k": list(self.keys), "f": self.fingerprint}
        if self.seed is not None:
            data["r"] = self.seed
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _bad(why: str) -> SearchError:
    return SearchError(f"bad cursor: {why} (start again from the first page)", key="cursor")


def decode_cursor(text: str) -> Cursor:
    if not isinstance(text, str) or not text or len(text) > MAX_CURSOR_CHARS:
        raise _bad("empty or too long")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _bad("not a cursor") from None
    if not isinstance(data, dict):
        raise _bad("not a cursor")
    order, segment, keys, fp, seed = data.get("o"), data.get("s"), data.get("k"), data.get("f"), data.get("r")
    if not isinstance(order, str) or not isinstance(segment, int) or not isinstance(fp, str):
        raise _bad("not a cursor")
    if not isinstance(keys, list) or not keys or not all(
            k is None or isinstance(k, (int, float, str)) and not isinstance(k, bool) for k in keys):
        raise _bad("not a cursor")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise _bad("not a cursor")
    return Cursor(order=order, segment=segment, keys=tuple(keys), fingerprint=fp, seed=seed)

"""A user's edits to photos, recorded as the MANUAL source so no re-index overwrites them.

The indexer merges a file's metadata field by field and replaces a value only with one from the
same or a higher source (daemon/library/sources.py). Every field edited here is marked `manual`
in the photo's `sources`, the highest source, so the edit survives any later pass over the
file, a changed sidecar included. Flags the indexer never reads from files (favorite, private,
archived) are marked too, so that estimates (the NSFW check marking a photo private) leave a
user's choice alone.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from typing import Any

from daemon.library.sources import Source
from daemon.places.index import Place
from daemon.timeutil import utcnow

MANUAL = Source.MANUAL.label
TEXT_FIELDS = ("title", "description")
FLAG_FIELDS = ("favorite", "private", "archived")
UNSET = object()  # "location not changed" (None means "remove the location")


class EditError(ValueError):
    """An edit that cannot be applied as given; the message names the field."""


def utc_of(taken_at: str | None, offset: int | None) -> str | None:
    if not taken_at or offset is None:
        return None
    local = datetime.fromisoformat(taken_at[:19])
    return (local - timedelta(minutes=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


def edit_photo(conn: sqlite3.Connection, photo_id: int, changes: dict[str, Any], *,
               place: Place | None | object = UNSET) -> bool:
    """Apply `changes` (already validated: title, description, taken_at, taken_offset, lat+lng,
    keywords, rating, favorite, private, archived) to one photo. `place` is the place looked up
    for a new location (None when there is none, UNSET when the location did not change).
    Returns False when the photo does not exist."""
    row = conn.execute("SELECT taken_at, taken_offset, sources FROM photos WHERE id = ?", (photo_id,)).fetchone()
    if row is None:
        return False
    sources: dict[str, str] = json.loads(row["sources"] or "{}")
    updates: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        if name in changes:
            value = changes[name]
            updates[name] = value.strip() or None if isinstance(value, str) else None
    if "keywords" in changes:
        words: list[str] = []
        for w in changes["keywords"] or []:
            w = w.strip()
            if w and w.lower() not in {x.lower() for x in words}:
                words.append(w)
        updates["keywords"] = json.dumps(words, ensure_ascii=False)
    if "rating" in changes:
        updates["rating"] = changes["rating"]
    for name in FLAG_FIELDS:
        if name in changes:
            updates[name] = int(bool(changes[name]))
    if "taken_at" in changes or "taken_offset" in changes:
        taken_at = changes.get("taken_at", row["taken_at"])
        offset = changes.get("taken_offset", row["taken_offset"])
        if "taken_at" in changes:
            updates["taken_at"] = taken_at
        if "taken_offset" in changes:
            updates["taken_offset"] = offset
        updates["taken_at_utc"] = utc_of(taken_at, offset)
        for name in ("taken_at", "taken_offset", "taken_at_utc"):
            sources[name] = MANUAL
    if "lat" in changes:
        lat, lng = changes["lat"], changes["lng"]
        updates["lat"], updates["lng"] = lat, lng
        if lat is None:
            updates["alt"] = None
            sources["alt"] = MANUAL
        p = place if isinstance(place, Place) else None
        updates.update(city=p.city or None if p else None, region=p.region or None if p else None,
                       country=p.country or None if p else None, country_code=p.country_code or None if p else None)
        for name in ("lat", "lng", "place"):
            sources[name] = MANUAL
    for name in updates:
        if name in ("city", "region", "country", "country_code", "taken_at_utc", "alt"):
            continue
        sources[name] = MANUAL
    if not updates:
        return True
    updates["sources"] = json.dumps(sources, sort_keys=True)
    updates["updated_at"] = utcnow()
    columns = ", ".join(f"{k} = ?" for k in updates)
    conn.execute(f"UPDATE photos SET {columns} WHERE id = ?", (*updates.values(), photo_id))
    return True


def photo_ids(conn: sqlite3.Connection, uids: list[str]) -> dict[str, int]:
    """Row ids of the photos with these public ids (those that exist)."""
    out: dict[str, int] = {}
    for start in range(0, len(uids), 500):
        chunk = uids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for r in conn.execute(f"SELECT uid, id FROM photos WHERE uid IN ({marks}) AND primary_file_id IS NOT NULL",
                              chunk):
            out[r["uid"]] = r["id"]
    return out

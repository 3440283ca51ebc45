"""Photos as the outside world sees them: one dictionary shape for the JSON export and the API.

The shape is a stable contract (backups and other tools read `shoebox export --json`): fields are
only ever added, never renamed or removed; README.md documents every one.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterator

EXPORT_VERSION = 1

_SCALARS = (
    "type", "taken_at", "taken_offset", "taken_at_utc", "title", "description", "make", "model", "lens",
    "software", "iso", "f_number", "exposure_time", "focal_length", "focal_length_35", "lat", "lng", "alt",
    "orientation", "width", "height", "rating", "content_identifier", "duration", "video_codec",
    "audio_codec", "fps", "main_color", "luminance", "chroma", "shape", "megapixels", "phash",
    "placeholder", "sharpness", "quality",
)
_FLAGS = ("mono", "review", "favorite", "private", "archived", "offline")


def photo_dict(row: sqlite3.Row, files: list[sqlite3.Row]) -> dict[str, Any]:
    """The public form of one photo with its files."""
    d: dict[str, Any] = {"id": row["uid"]}
    for name in _SCALARS:
        d[name] = row[name]
    for name in _FLAGS:
        d[name] = bool(row[name])
    d["keywords"] = json.loads(row["keywords"] or "[]")
    d["color_grid"] = json.loads(row["color_grid"]) if row["color_grid"] else None
    d["place"] = None if row["country_code"] is None else {
        "city": row["city"], "region": row["region"], "country": row["country"], "country_code": row["country_code"],
    }
    d["motion_video"] = None if row["motion_offset"] is None else {
        "offset": row["motion_offset"], "length": row["motion_length"]}
    d["thumb_key"] = row["thumb_key"]
    d["sources"] = json.loads(row["sources"] or "{}")
    d["added_at"] = row["added_at"]
    d["updated_at"] = row["updated_at"]
    d["indexed_at"] = row["indexed_at"]
    d["files"] = [file_dict(f, primary=f["id"] == row["primary_file_id"]) for f in files]
    d["labels"] = []
    d["faces"] = []
    d["tagged_at"] = row["tagged_at"]
    d["nsfw"] = row["nsfw"]
    return d


def label_dict(r: sqlite3.Row) -> dict[str, Any]:
    return {"name": r["name"], "categories": json.loads(r["categories"] or "[]"),
            "confidence": r["confidence"], "source": r["source"]}


def face_dict(r: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": r["uid"], "box": {"x": r["x"], "y": r["y"], "w": r["w"], "h": r["h"]}, "score": r["score"],
        "person": None if r["person_uid"] is None else {"id": r["person_uid"], "name": r["person_name"],
                                                       "source": r["person_source"], "similarity": r["similarity"]},
        "cluster": r["cluster_uid"], "hidden": bool(r["hidden"]),
    }


LABELS_SQL = ("SELECT pl.photo_id, l.name, l.categories, pl.confidence, pl.source FROM photo_labels pl"
              " JOIN labels l ON l.id = pl.label_id WHERE pl.removed = 0 AND l.hidden = 0 AND pl.photo_id IN ({})"
              " ORDER BY pl.confidence DESC")
FACES_SQL = ("SELECT f.photo_id, f.uid, f.x, f.y, f.w, f.h, f.score, f.person_source, f.similarity, f.hidden,"
             " p.uid AS person_uid, p.name AS person_name, c.uid AS cluster_uid FROM faces f"
             " LEFT JOIN people p ON p.id = f.person_id LEFT JOIN clusters c ON c.id = f.cluster_id"
             " WHERE f.photo_id IN ({}) ORDER BY f.x")


def attach_tags(conn: sqlite3.Connection, photos: dict[int, dict[str, Any]]) -> None:
    """Fill the labels and faces of already-built photo dicts (keyed by photo row id)."""
    if not photos:
        return
    ids = list(photos)
    marks = ",".join("?" * len(ids))
    for r in conn.execute(LABELS_SQL.format(marks), ids):
        photos[r["photo_id"]]["labels"].append(label_dict(r))
    for r in conn.execute(FACES_SQL.format(marks), ids):
        photos[r["photo_id"]]["faces"].append(face_dict(r))


def file_dict(f: sqlite3.Row, *, primary: bool) -> dict[str, Any]:
    return {
        "path": f["path_text"], "kind": f["kind"], "role": "primary" if primary else f["role"],
        "mime": f["mime"], "size": f["size"], "sha1": f["sha1"], "state": f["state"], "error": f["error"],
        "warnings": json.loads(f["warnings"]) if f["warnings"] else [], "offline": bool(f["offline"]),
        "missing_since": f["missing_since"],
    }


def iter_photos(conn: sqlite3.Connection, *, batch: int = 500) -> Iterator[dict[str, Any]]:
    """Every photo (indexed, with a primary file), oldest id first, read in batches."""
    last = 0
    while True:
        rows = conn.execute(
            "SELECT * FROM photos WHERE id > ? AND primary_file_id IS NOT NULL ORDER BY id LIMIT ?",
            (last, batch)).fetchall()
        if not rows:
            return
        ids = [r["id"] for r in rows]
        files: dict[int, list[sqlite3.Row]] = {i: [] for i in ids}
        marks = ",".join("?" * len(ids))
        for f in conn.execute(f"SELECT * FROM files WHERE photo_id IN ({marks}) ORDER BY id", ids):
            files[f["photo_id"]].append(f)
        built = {r["id"]: photo_dict(r, files[r["id"]]) for r in rows}
        attach_tags(conn, built)
        yield from built.values()
        last = ids[-1]

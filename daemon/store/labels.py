"""Labels in the store: the list with counts, rename (merging into a label that already has the
new name), hide and show, and a photo's labels added and removed by hand. The API (daemon.api.labels)
and anything else that changes labels go through these, so the rules live in one place.

A user's decision outlives every re-tag: a label removed from a photo is kept as a row with
`removed = 1` (the tagger leaves such rows alone, see daemon.vision.tagger._store_labels), a label
added by hand has source 'manual' (the tagger only replaces its own 'image' rows), and a renamed
label keeps its old name in label_aliases (migration 0006) so the classifier's next use of the old
name lands on the renamed label. The full-text index follows through the triggers of migrations
0003 and 0006: search finds the new name at once.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from daemon.timeutil import utcnow

MAX_NAME = 100


class LabelError(ValueError):
    """A label request that cannot be done; `status` is the HTTP answer (400 or 404)."""

    def __init__(self, message: str, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.field = status, field


def clean_name(name: str) -> str:
    name = " ".join(str(name).split())
    if not name:
        raise LabelError("a label needs a name", field="name")
    if len(name) > MAX_NAME:
        raise LabelError(f"a label name may have at most {MAX_NAME} characters", field="name")
    return name


def label_row(conn: sqlite3.Connection, label_id: int) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM labels WHERE id = ?", (label_id,)).fetchone()
    if row is None:
        raise LabelError(f"no label {label_id}", 404)
    return row


def label_dict(conn: sqlite3.Connection, label_id: int) -> dict[str, Any]:
    row = conn.execute(LIST_SQL.format(where="l.id = ?"), (label_id,)).fetchone()
    if row is None:
        raise LabelError(f"no label {label_id}", 404)
    return _out(row)


LIST_SQL = ("SELECT l.id, l.name, l.categories, l.hidden,"
            " (SELECT count(*) FROM photo_labels AS pl WHERE pl.label_id = l.id AND pl.removed = 0) AS count,"
            " (SELECT group_concat(a.name, char(10)) FROM label_aliases AS a WHERE a.label_id = l.id) AS aliases"
            " FROM labels AS l WHERE {where}")


def _out(r: sqlite3.Row) -> dict[str, Any]:
    return {"id": r["id"], "name": r["name"], "categories": json.loads(r["categories"] or "[]"),
            "hidden": bool(r["hidden"]), "count": int(r["count"]),
            "aliases": sorted(r["aliases"].split("\n")) if r["aliases"] else []}


def list_labels(conn: sqlite3.Connection, *, hidden: bool = False, min_count: int = 1,
                name: str = "") -> list[dict[str, Any]]:
    """Labels with the number of photos carrying them (removed ones not counted), most used first."""
    where, params = ["1"], []
    if not hidden:
        where.append("l.hidden = 0")
    if name:
        where.append("l.name LIKE ? ESCAPE '\\'")
        params.append("%" + name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    rows = conn.execute(LIST_SQL.format(where=" AND ".join(where)), params).fetchall()
    out = [_out(r) for r in rows if r["count"] >= min_count]
    out.sort(key=lambda d: (-d["count"], d["name"].lower()))
    return out


def rename_label(conn: sqlite3.Connection, label_id: int, new_name: str) -> tuple[int, bool]:
    """Rename a label; if another label already has the new name, merge into it. Returns
    (the label's id afterwards, merged). The old name becomes an alias of the result."""
    src = label_row(conn, label_id)
    name = clean_name(new_name)
    if name == src["name"]:
        return label_id, False
    target = conn.execute("SELECT * FROM labels WHERE name = ? COLLATE NOCASE AND id != ?", (name, label_id)).fetchone()
    now = utcnow()
    # the new name is no longer anyone's old name
    conn.execute("DELETE FROM label_aliases WHERE name = ?", (name,))
    if target is None:
        conn.execute("UPDATE labels SET name = ? WHERE id = ?", (name, label_id))
        final, merged = label_id, False
    else:
        final, merged = int(target["id"]), True
        # a photo carrying both keeps the target's row (and the user's decision on it)
        conn.execute("DELETE FROM photo_labels WHERE label_id = ? AND photo_id IN"
                     " (SELECT photo_id FROM photo_labels WHERE label_id = ?)", (label_id, final))
        conn.execute("UPDATE photo_labels SET label_id = ? WHERE label_id = ?", (final, label_id))
        conn.execute("UPDATE label_aliases SET label_id = ? WHERE label_id = ?", (final, label_id))
        if target["hidden"] and not src["hidden"]:
            conn.execute("UPDATE labels SET hidden = 0 WHERE id = ?", (final,))
        conn.execute("DELETE FROM labels WHERE id = ?", (label_id,))
    if src["name"].lower() != name.lower():
        conn.execute("INSERT OR REPLACE INTO label_aliases (name, label_id, created_at) VALUES (?, ?, ?)",
                     (src["name"], final, now))
    return final, merged


def set_label_hidden(conn: sqlite3.Connection, label_id: int, hidden: bool) -> None:
    label_row(conn, label_id)
    conn.execute("UPDATE labels SET hidden = ? WHERE id = ?", (int(hidden), label_id))


def _photo_id(conn: sqlite3.Connection, uid: str) -> int:
    row = conn.execute("SELECT id FROM photos WHERE uid = ? AND primary_file_id IS NOT NULL", (uid,)).fetchone()
    if row is None:
        raise LabelError(f"no photo {uid!r}", 404)
    return int(row[0])


def resolve_label(conn: sqlite3.Connection, name: str) -> sqlite3.Row | None:
    """The label a name means now: its own, or the label it was renamed to."""
    alias = conn.execute("SELECT label_id FROM label_aliases WHERE name = ?", (name,)).fetchone()
    if alias is not None:
        return conn.execute("SELECT * FROM labels WHERE id = ?", (alias[0],)).fetchone()
    return conn.execute("SELECT * FROM labels WHERE name = ? COLLATE NOCASE", (name,)).fetchone()


def add_photo_label(conn: sqlite3.Connection, photo_uid: str, name: str) -> tuple[str, bool]:
    """Put a label on a photo by hand (source 'manual'; a label removed before comes back).
    Returns (the label's name, whether the label was new)."""
    photo_id = _photo_id(conn, photo_uid)
    name = clean_name(name)
    label = resolve_label(conn, name)
    created = label is None
    if label is None:
        cur = conn.execute("INSERT INTO labels (name, categories, priority, created_at) VALUES (?, '[]', 0, ?)",
                           (name, utcnow()))
        label = conn.execute("SELECT * FROM labels WHERE id = ?", (cur.lastrowid,)).fetchone()
    existing = conn.execute("SELECT removed FROM photo_labels WHERE photo_id = ? AND label_id = ?",
                            (photo_id, label["id"])).fetchone()
    if existing is None:
        conn.execute("INSERT INTO photo_labels (photo_id, label_id, confidence, source) VALUES (?, ?, 1.0, 'manual')",
                     (photo_id, label["id"]))
    else:
        conn.execute("UPDATE photo_labels SET removed = 0, source = 'manual', confidence = 1.0"
                     " WHERE photo_id = ? AND label_id = ?", (photo_id, label["id"]))
    if label["hidden"]:  # a label asked for by name is wanted: show it
        conn.execute("UPDATE labels SET hidden = 0 WHERE id = ?", (label["id"],))
    return str(label["name"]), created


def remove_photo_label(conn: sqlite3.Connection, photo_uid: str, name: str) -> str:
    """Take a label off a photo for good: the row stays with removed = 1, so re-tagging never
    puts it back."""
    photo_id = _photo_id(conn, photo_uid)
    label = resolve_label(conn, " ".join(name.split()))
    row = None if label is None else conn.execute(
        "SELECT removed FROM photo_labels WHERE photo_id = ? AND label_id = ?", (photo_id, label["id"])).fetchone()
    if label is None or row is None or row["removed"]:
        raise LabelError(f"photo {photo_uid!r} has no label {name!r}", 404)
    conn.execute("UPDATE photo_labels SET removed = 1 WHERE photo_id = ? AND label_id = ?", (photo_id, label["id"]))
    return str(label["name"])


def photo_labels(conn: sqlite3.Connection, photo_uid: str) -> list[dict[str, Any]]:
    """A photo's visible labels (not removed, not hidden), most confident first."""
    return [{"name": r["name"], "source": r["source"], "confidence": r["confidence"]} for r in conn.execute(
        "SELECT l.name, pl.source, pl.confidence FROM photo_labels pl JOIN photos p ON p.id = pl.photo_id"
        " JOIN labels l ON l.id = pl.label_id WHERE p.uid = ? AND pl.removed = 0 AND l.hidden = 0"
        " ORDER BY pl.confidence DESC, l.name", (photo_uid,))]

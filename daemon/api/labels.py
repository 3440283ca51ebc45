"""Labels: the list with counts, rename (merging into a label that already has the new name),
hide and show; a photo's labels added and removed by hand.

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
from typing import Annotated, Any, Optional

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r201
from pydantic import BaseModel, ConfigDict, Field, model_validator

from daemon.api.access import requires
from daemon.api.errors import ApiError, not_found, validated
from daemon.api.keys import APP_KEY
from daemon.api.photos import Uid
from daemon.app import App
from daemon.auth.roles import Scope
from daemon.events import bus as ev
from daemon.store.db import Stage
from daemon.timeutil import utcnow

MAX_NAME = 100
LabelId = Annotated[int, Field(ge=1, le=2**62, description="a label's id, from GET /labels")]


class LabelError(ValueError):
    """A label request that cannot be done; `status` is the HTTP answer (400 or 404)."""

    def __init__(self, message: str, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.field = status, field


# -- store ------------------------------------------------------------------------------------------


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


# -- API --------------------------------------------------------------------------------------------


class LabelOut(BaseModel):
    id: int
    name: str
    categories: list[str]
    hidden: bool
    count: int = Field(description="photos carrying it (labels removed by a user not counted)")
    aliases: list[str] = Field(description="names it had before a rename; the classifier's use of them lands here")


class LabelChanges(BaseModel):
    """A new name (if another label has it, this one is merged into it) and/or hidden."""

    model_config = ConfigDict(extra="forbid")
    name: Optional[str] = Field(default=None, min_length=1, max_length=MAX_NAME)
    hidden: Optional[bool] = None

    @model_validator(mode="after")
    def _something(self) -> "LabelChanges":
        if self.name is None and self.hidden is None:
            raise ValueError("give a new name, hidden, or both")
        return self


class LabelChanged(LabelOut):
    merged: bool = Field(description="true when the new name belonged to another label, which now has these photos")


class PhotoLabelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=MAX_NAME)


class PhotoLabels(BaseModel):
    photo: str
    label: str
    labels: list[dict[str, Any]]


def _app(request: web.Request) -> App:
    return request.app[APP_KEY]


def _raise(exc: LabelError) -> ApiError:
    if exc.status == 404:
        return not_found(str(exc))
    return ApiError(400, "bad_request", str(exc), {"field": exc.field} if exc.field else None)


async def _write(app: App, fn: Any) -> Any:
    """A write that gets `(conn, stage)` and stages its events (Database.write_staged)."""
    assert app.db is not None
    try:
        return await app.db.write_staged(fn)
    except LabelError as exc:
        raise _raise(exc) from None


def _photo_labels(conn: sqlite3.Connection, photo_uid: str) -> list[dict[str, Any]]:
    return [{"name": r["name"], "source": r["source"], "confidence": r["confidence"]} for r in conn.execute(
        "SELECT l.name, pl.source, pl.confidence FROM photo_labels pl JOIN photos p ON p.id = pl.photo_id"
        " JOIN labels l ON l.id = pl.label_id WHERE p.uid = ? AND pl.removed = 0 AND l.hidden = 0"
        " ORDER BY pl.confidence DESC, l.name", (photo_uid,))]


@requires(Scope.READ)
@validated
async def get_labels(request: web.Request, hidden: bool = False,
                     min_count: int = Field(1, ge=0, le=1_000_000, description="leave out labels on fewer photos"),
                     name: str = Field("", max_length=MAX_NAME, description="only labels whose name contains this")
                     ) -> r200[list[LabelOut]]:
    """Labels with how many photos carry each, most used first. Hidden labels only with ?hidden=true.

    Tags: labels
    """
    app = _app(request)
    assert app.db is not None
    return web.json_response(await app.db.read(lambda c: list_labels(c, hidden=hidden, min_count=min_count,
                                                                       name=name)))


@requires(Scope.WRITE)
@validated
async def change_label(request: web.Request, uid: LabelId, /, body: LabelChanges) -> r200[LabelChanged]:
    """Rename a label (if the new name is another label's, the two are merged into that one), hide
    it (it leaves photos, search and this list) or show it again.

    Tags: labels
    """
    app = _app(request)

    label_id = uid  # named uid in the route like every other resource's id

    def write(conn: sqlite3.Connection, stage: Stage) -> dict[str, Any]:
        before = label_dict(conn, label_id)
        final, merged = label_id, False
        if body.name is not None:
            final, merged = rename_label(conn, label_id, body.name)
        if body.hidden is not None:
            set_label_hidden(conn, final, body.hidden)
        after = {**label_dict(conn, final), "merged": merged}
        changes = [c for c, changed in (("renamed", after["name"] != before["name"]),
                                        ("hidden", bool(after["hidden"]) != bool(before["hidden"]))) if changed]
        if changes or merged:
            stage(ev.LABEL_UPDATED, {"label": after["name"], "label_id": final, "changes": changes or ["renamed"],
                                     "old_name": before["name"], "hidden": bool(after["hidden"]), "merged": merged})
        return after

    return web.json_response(await _write(app, write))


@requires(Scope.WRITE)
@validated
async def add_label(request: web.Request, uid: Uid, /, body: PhotoLabelBody) -> r201[PhotoLabels]:
    """Put a label on a photo by hand (made if no label has this name). Kept through every re-tag.

    Tags: labels
    """
    app = _app(request)

    def write(conn: sqlite3.Connection, stage: Stage) -> tuple[str, list[dict[str, Any]]]:
        name, created = add_photo_label(conn, uid, body.name)
        if created:
            stage(ev.LABEL_CREATED, {"label": name, "photo": uid, "source": "manual"})
        stage(ev.LABEL_UPDATED, {"label": name, "photo": uid, "changes": ["added"]})
        stage(ev.PHOTO_UPDATED, {"photo": uid, "changes": ["labels"], "label_added": name})
        return name, _photo_labels(conn, uid)

    name, labels = await _write(app, write)
    return web.json_response({"photo": uid, "label": name, "labels": labels}, status=201)


@requires(Scope.WRITE)
@validated
async def remove_label(request: web.Request, uid: Uid, /,
                       name: str = Field(..., min_length=1, max_length=MAX_NAME, description="the label's name")
                       ) -> r200[PhotoLabels]:
    """Take a label off a photo. It stays off: re-tagging never brings it back.

    Tags: labels
    """
    app = _app(request)

    def write(conn: sqlite3.Connection, stage: Stage) -> tuple[str, list[dict[str, Any]]]:
        removed = remove_photo_label(conn, uid, name)
        stage(ev.LABEL_UPDATED, {"label": removed, "photo": uid, "changes": ["removed"]})
        stage(ev.PHOTO_UPDATED, {"photo": uid, "changes": ["labels"], "label_removed": removed})
        return removed, _photo_labels(conn, uid)

    removed, labels = await _write(app, write)
    return web.json_response({"photo": uid, "label": removed, "labels": labels})


def setup_routes(web_app: web.Application, prefix: str) -> None:
    r = web_app.router
    r.add_get(f"{prefix}/labels", get_labels)
    r.add_patch(f"{prefix}/labels/{{uid}}", change_label)
    r.add_post(f"{prefix}/photos/{{uid}}/labels", add_label)
    r.add_delete(f"{prefix}/photos/{{uid}}/labels", remove_label)

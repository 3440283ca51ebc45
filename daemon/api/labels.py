"""Labels over HTTP: the list with counts, rename/merge, hide and show, a photo's labels added and
removed by hand. The rules and the SQL are in daemon.store.labels; this module validates, stages
the events of each change in its transaction and answers.
"""

from __future__ import annotations

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
from daemon.store.labels import (MAX_NAME, LabelError, add_photo_label, label_dict, list_labels, photo_labels,
                                  remove_photo_label, rename_label, set_label_hidden)

LabelId = Annotated[int, Field(ge=1, le=2**62, description="a label's id, from GET /labels")]


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
        return name, photo_labels(conn, uid)

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
        return removed, photo_labels(conn, uid)

    removed, labels = await _write(app, write)
    return web.json_response({"photo": uid, "label": removed, "labels": labels})


def setup_routes(web_app: web.Application, prefix: str) -> None:
    r = web_app.router
    r.add_get(f"{prefix}/labels", get_labels)
    r.add_patch(f"{prefix}/labels/{{uid}}", change_label)
    r.add_post(f"{prefix}/photos/{{uid}}/labels", add_label)
    r.add_delete(f"{prefix}/photos/{{uid}}/labels", remove_label)

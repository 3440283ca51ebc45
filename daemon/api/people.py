"""People and faces: named people, unnamed clusters of faces, and what a user decides about them
(name, rename, merge, split, reject, assign, hide), plus the face crop images.

The decisions go through daemon.store.people, which records them so that no re-tag or
re-cluster undoes them; its PeopleError becomes 404 (an unknown id) or 400 (anything else) with
its message. Names are searchable at once (`person:"Ann Lee"` and free text): the full-text
triggers of migration 0003 follow renames, merges and assignments.

Face crops are files under data/thumbs named by faces.crop_key (written by the tagger). They are
served like thumbnails (sendfile, ETag) and, being <img> material, accept the thumbnail token as
?t=; hence their route lives under /t/. The file path is made from the database value and must
stay inside the thumbnail folder, so even a corrupted row cannot name another file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Annotated, Any, Optional

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r201
from pydantic import BaseModel, ConfigDict, Field, model_validator

from daemon.api.access import requires
from daemon.api.errors import ApiError, not_found, validated
from daemon.api.keys import APP_KEY
from daemon.app import App
from daemon.auth.roles import Scope
from daemon.events import bus as ev
from daemon.store import people as store
from daemon.store.db import Stage
from daemon.store.people import PeopleError

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
CROP_CACHE = "private, max-age=86400"
API = "/api/v1"


def crop_url(uid: str | None) -> str | None:
    """Where a client gets a face's crop (add ?t=<thumbnail token> in an <img> tag)."""
    return f"{API}/t/faces/{uid}/crop" if uid else None


# -- reading (the queries are the store's: the command line counts the same way) --------------------


def people_list(conn: sqlite3.Connection, *, hidden: bool = False, uid: str | None = None) -> list[dict[str, Any]]:
    """Named people with how many (visible) faces and photos they have, most first."""
    return [{**p, "cover_url": crop_url(p["cover_face"]), "q": _person_query(p["name"])}
            for p in store.people_list(conn, hidden=hidden, uid=uid)]


def _person_query(name: str) -> str | None:
    return None if '"' in name else f'person:"{name}"'


def clusters_list(conn: sqlite3.Connection, *, hidden: bool = False, min_faces: int = 1) -> list[dict[str, Any]]:
    """Clusters no one has named yet, largest first: the faces waiting for a name."""
    return [{**c, "cover_url": crop_url(c["cover_face"])}
            for c in store.clusters_list(conn, hidden=hidden, min_faces=min_faces)]


def faces_of(conn: sqlite3.Connection, column: str, uid: str, *, hidden: bool = False, cursor: int = 0,
             limit: int = 100) -> dict[str, Any]:
    """The faces of a person or a cluster, a page at a time (by face id), with their crops' URLs."""
    page = store.faces_of(conn, column, uid, hidden=hidden, cursor=cursor, limit=limit)
    faces = []
    for face in page["faces"]:
        has_crop = face.pop("has_crop")
        faces.append({**face, "crop_url": crop_url(face["id"]) if has_crop else None})
    return {"faces": faces, "next_cursor": page["next_cursor"]}


# -- API models -----------------------------------------------------------------------------------------


class Person(BaseModel):
    id: str
    name: str
    hidden: bool
    favorite: bool
    faces: int
    photos: int
    cover_face: Optional[str] = None
    cover_url: Optional[str] = Field(default=None, description="the cover face's crop; add ?t=<thumbnail token>")
    q: Optional[str] = Field(default=None, description="the search query for this person's photos")
    created_at: str


class Cluster(BaseModel):
    id: str
    hidden: bool
    faces: int
    photos: int
    cover_face: Optional[str] = None
    cover_url: Optional[str] = None


class FacePage(BaseModel):
    faces: list[dict[str, Any]]
    next_cursor: Optional[str] = None


class PersonChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Optional[Name] = None
    hidden: Optional[bool] = None

    @model_validator(mode="after")
    def _something(self) -> "PersonChanges":
        if self.name is None and self.hidden is None:
            raise ValueError("give a new name, hidden, or both")
        return self


class HiddenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: bool


class NameBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name


class IntoBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    into: Id = Field(description="the one that remains")


class SplitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    faces: list[Id] = Field(min_length=1, max_length=1000, description="faces to move into a new cluster")


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person: Id


class Named(BaseModel):
    person: str
    name: str
    created: bool


class NewCluster(BaseModel):
    cluster: str


class Done(BaseModel):
    ok: bool


# -- views ------------------------------------------------------------------------------------------------


def _app(request: web.Request) -> App:
    return request.app[APP_KEY]


def _error(exc: PeopleError) -> ApiError:
    message = str(exc)
    if message.startswith("no "):
        return not_found(message)
    return ApiError(400, "bad_request", message)


async def _read(request: web.Request, fn: Any) -> Any:
    app = _app(request)
    assert app.db is not None
    try:
        return await app.db.read(fn)
    except PeopleError as exc:
        raise _error(exc) from None


async def _write(request: web.Request, fn: Any) -> Any:
    app = _app(request)
    assert app.db is not None
    try:
        return await app.db.write(fn)
    except PeopleError as exc:
        raise _error(exc) from None


async def _write_staged(request: web.Request, fn: Any) -> Any:
    """A write that gets `(conn, stage)` and stages its events (Database.write_staged)."""
    app = _app(request)
    assert app.db is not None
    try:
        return await app.db.write_staged(fn)
    except PeopleError as exc:
        raise _error(exc) from None


def _one_person(conn: sqlite3.Connection, uid: str) -> dict[str, Any]:
    found = people_list(conn, hidden=True, uid=uid)
    if not found:
        raise PeopleError(f"no person {uid!r}")
    return found[0]


def _cursor(text: Optional[str]) -> int:
    if not text:
        return 0
    if not text.isdigit() or len(text) > 18:
        raise ApiError(400, "bad_request", "bad cursor: pass the next_cursor of the previous page", {"field": "cursor"})
    return int(text)


@requires(Scope.READ)
@validated
async def list_people(request: web.Request, hidden: bool = False) -> r200[list[Person]]:
    """Named people with their face and photo counts and a cover face, most faces first.
    Hidden people only with ?hidden=true.

    Tags: people
    """
    return web.json_response(await _read(request, lambda c: people_list(c, hidden=hidden)))


@requires(Scope.READ)
@validated
async def get_person(request: web.Request, uid: Id, /) -> r200[Person]:
    """One person.

    Tags: people
    """
    return web.json_response(await _read(request, lambda c: _one_person(c, uid)))


@requires(Scope.WRITE)
@validated
async def change_person(request: web.Request, uid: Id, /, body: PersonChanges) -> r200[Person]:
    """Rename a person (search finds the photos by the new name at once) or hide/show them.

    Tags: people
    """
    def write(conn: sqlite3.Connection, stage: Stage) -> dict[str, Any]:
        before = _one_person(conn, uid)
        if body.name is not None:
            store.rename_person(conn, uid, body.name)
        if body.hidden is not None:
            store.set_hidden(conn, "person", uid, body.hidden)
        after = _one_person(conn, uid)
        if after["name"] != before["name"]:
            stage(ev.PERSON_NAMED, {"person": after["name"], "person_id": uid, "old_name": before["name"],
                                    "created": False})
        return after

    return web.json_response(await _write_staged(request, write))


@requires(Scope.WRITE)
@validated
async def merge_person(request: web.Request, uid: Id, /, body: IntoBody) -> r200[Person]:
    """Merge this person into another (`into`): every face and cluster becomes theirs, this one goes.

    Tags: people
    """
    def write(conn: sqlite3.Connection, stage: Stage) -> dict[str, Any]:
        source = _one_person(conn, uid)
        store.merge_people(conn, uid, body.into)
        target = _one_person(conn, body.into)
        stage(ev.PERSON_MERGED, {"person": target["name"], "person_id": body.into, "merged": uid,
                                 "merged_name": source["name"]})
        return target

    return web.json_response(await _write_staged(request, write))


@requires(Scope.READ)
@validated
async def person_faces(request: web.Request, uid: Id, /, hidden: bool = False,
                       cursor: Optional[str] = Field(None, max_length=20),
                       limit: int = Field(100, ge=1, le=500)) -> r200[FacePage]:
    """The faces of a person: the photo each is in, its box (0..1 of the oriented photo), how it
    was assigned, and its crop URL.

    Tags: people
    """
    after = _cursor(cursor)
    return web.json_response(await _read(
        request, lambda c: faces_of(c, "person_id", uid, hidden=hidden, cursor=after, limit=limit)))


@requires(Scope.READ)
@validated
async def list_clusters(request: web.Request, hidden: bool = False,
                        min_faces: int = Field(1, ge=1, le=100000)) -> r200[list[Cluster]]:
    """Clusters of faces no one has named yet, largest first.

    Tags: people
    """
    return web.json_response(await _read(request, lambda c: clusters_list(c, hidden=hidden, min_faces=min_faces)))


@requires(Scope.READ)
@validated
async def cluster_faces(request: web.Request, uid: Id, /, hidden: bool = False,
                        cursor: Optional[str] = Field(None, max_length=20),
                        limit: int = Field(100, ge=1, le=500)) -> r200[FacePage]:
    """The faces of a cluster.

    Tags: people
    """
    after = _cursor(cursor)
    return web.json_response(await _read(
        request, lambda c: faces_of(c, "cluster_id", uid, hidden=hidden, cursor=after, limit=limit)))


@requires(Scope.WRITE)
@validated
async def name_cluster(request: web.Request, uid: Id, /, body: NameBody) -> r201[Named]:
    """Name a cluster: it becomes a person (or joins the person who already has this name) and its
    faces are confirmed as theirs. 201 when a person was made, 200 when it joined one.

    Tags: people
    """
    def write(conn: sqlite3.Connection, stage: Stage) -> dict[str, Any]:
        named = store.name_cluster(conn, uid, body.name)
        stage(ev.PERSON_NAMED, {"person": named["name"], "person_id": named["person"], "cluster": uid,
                                "created": named["created"]})
        return named

    named = await _write_staged(request, write)
    return web.json_response(named, status=201 if named["created"] else 200)


@requires(Scope.WRITE)
@validated
async def merge_cluster(request: web.Request, uid: Id, /, body: IntoBody) -> r200[Done]:
    """Merge this cluster into another (`into`); if that one is named, these faces become that person's.

    Tags: people
    """
    await _write(request, lambda c: store.merge_clusters(c, uid, body.into))
    return web.json_response({"ok": True})


@requires(Scope.WRITE)
@validated
async def split_cluster(request: web.Request, uid: Id, /, body: SplitBody) -> r201[NewCluster]:
    """Move some faces out of a cluster into a new one; they are never put back automatically.

    Tags: people
    """
    new = await _write(request, lambda c: store.split_cluster(c, uid, list(dict.fromkeys(body.faces))))
    return web.json_response({"cluster": new}, status=201)


@requires(Scope.WRITE)
@validated
async def change_cluster(request: web.Request, uid: Id, /, body: HiddenBody) -> r200[Done]:
    """Hide a cluster (faces of strangers in the background) or show it again.

    Tags: people
    """
    await _write(request, lambda c: store.set_hidden(c, "cluster", uid, body.hidden))
    return web.json_response({"ok": True})


@requires(Scope.WRITE)
@validated
async def reject_face(request: web.Request, uid: Id, /) -> r200[Done]:
    """"This is not them": the face leaves its person and cluster for good.

    Tags: people
    """
    await _write(request, lambda c: store.reject_face(c, uid))
    return web.json_response({"ok": True})


@requires(Scope.WRITE)
@validated
async def assign_face(request: web.Request, uid: Id, /, body: AssignBody) -> r200[Done]:
    """"This is them": give a face to a person; nothing automatic changes it afterwards.

    Tags: people
    """
    await _write(request, lambda c: store.assign_face(c, uid, body.person))
    return web.json_response({"ok": True})


@requires(Scope.WRITE)
@validated
async def change_face(request: web.Request, uid: Id, /, body: HiddenBody) -> r200[Done]:
    """Hide a face (it leaves its person's counts and search) or show it again.

    Tags: people
    """
    await _write(request, lambda c: store.set_hidden(c, "face", uid, body.hidden))
    return web.json_response({"ok": True})


def crop_file(thumbs: Path, crop_key: str | None) -> Path | None:
    """The crop's file, only if it is inside the thumbnail folder and exists."""
    if not crop_key:
        return None
    root = thumbs.resolve()
    path = (root / crop_key).resolve()
    if not path.is_relative_to(root) or path == root or not path.is_file():
        return None
    return path


@requires(Scope.THUMBNAILS, url_token=True)
@validated
async def face_crop(request: web.Request, uid: Id, /,
                    t: str = Field("", max_length=2000, description="thumbnail token, for <img> tags")) -> r200[Any]:
    """A face's crop (JPEG), for people lists and face pickers. Accepts the thumbnail token as ?t=.

    Tags: people
    """
    app = _app(request)
    assert app.db is not None
    key = await app.db.scalar("SELECT crop_key FROM faces WHERE uid = ?", (uid,))
    path = crop_file(app.thumbs, key)
    if path is None:
        raise not_found(f"no crop for face {uid!r}")
    return web.FileResponse(path, headers={"Cache-Control": CROP_CACHE, "X-Content-Type-Options": "nosniff",
                                           "Content-Type": "image/jpeg"})


def setup_routes(web_app: web.Application, prefix: str) -> None:
    r = web_app.router
    r.add_get(f"{prefix}/people", list_people)
    r.add_get(f"{prefix}/people/{{uid}}", get_person)
    r.add_patch(f"{prefix}/people/{{uid}}", change_person)
    r.add_post(f"{prefix}/people/{{uid}}/merge", merge_person)
    r.add_get(f"{prefix}/people/{{uid}}/faces", person_faces)
    r.add_get(f"{prefix}/clusters", list_clusters)
    r.add_patch(f"{prefix}/clusters/{{uid}}", change_cluster)
    r.add_get(f"{prefix}/clusters/{{uid}}/faces", cluster_faces)
    r.add_post(f"{prefix}/clusters/{{uid}}/name", name_cluster)
    r.add_post(f"{prefix}/clusters/{{uid}}/merge", merge_cluster)
    r.add_post(f"{prefix}/clusters/{{uid}}/split", split_cluster)
    r.add_post(f"{prefix}/faces/{{uid}}/reject", reject_face)
    r.add_post(f"{prefix}/faces/{{uid}}/assign", assign_face)
    r.add_patch(f"{prefix}/faces/{{uid}}", change_face)
    r.add_get(f"{prefix}/t/faces/{{uid}}/crop", face_crop)

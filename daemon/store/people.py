"""People and face clusters as a user shapes them: name, rename, merge, split, reject, hide.

Every function runs inside a write transaction (`db.write(lambda c: name_cluster(c, ...))`).
A user's decision is recorded so that nothing automatic undoes it later: faces of a cluster the
user named become that person's confirmed faces (person_source = 'manual'), a rejected face gets
a row in face_rejections and is never matched to that person or cluster again, hidden stays hidden.
"""

from __future__ import annotations

import secrets
import sqlite3
from typing import Any

from daemon.timeutil import utcnow
from daemon.vision.tagger import new_cluster, refresh_clusters


class PeopleError(ValueError):
    """A request about people that cannot be done (unknown id, empty name); the message says why."""


def _one(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...], what: str) -> sqlite3.Row:
    row = conn.execute(sql, params).fetchone()
    if row is None:
        raise PeopleError(f"no {what} {params[0]!r}")
    return row


def _clean_name(name: str) -> str:
    name = " ".join(str(name).split())
    if not name:
        raise PeopleError("a person needs a name")
    if len(name) > 200:
        raise PeopleError("a name may have at most 200 characters")
    return name


def person_by_name(conn: sqlite3.Connection, name: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM people WHERE name = ? COLLATE NOCASE ORDER BY id LIMIT 1", (name,)).fetchone()


def create_person(conn: sqlite3.Connection, name: str) -> int:
    now = utcnow()
    cur = conn.execute("INSERT INTO people (uid, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
                       (secrets.token_hex(8), _clean_name(name), now, now))
    return int(cur.lastrowid)


def name_cluster(conn: sqlite3.Connection, cluster_uid: str, name: str) -> dict[str, Any]:
    """Name a cluster: it becomes a person (or joins the person of that name); its faces are confirmed."""
    cluster = _one(conn, "SELECT * FROM clusters WHERE uid = ?", (cluster_uid,), "cluster")
    name = _clean_name(name)
    existing = person_by_name(conn, name)
    person_id = int(existing["id"]) if existing else create_person(conn, name)
    now = utcnow()
    conn.execute("UPDATE clusters SET person_id = ?, updated_at = ? WHERE id = ?", (person_id, now, cluster["id"]))
    conn.execute("UPDATE faces SET person_id = ?, person_source = 'manual', similarity = NULL"
                 " WHERE cluster_id = ? AND id NOT IN (SELECT face_id FROM face_rejections WHERE person_id = ?)",
                 (person_id, cluster["id"], person_id))
    person = conn.execute("SELECT uid, name FROM people WHERE id = ?", (person_id,)).fetchone()
    return {"person": person["uid"], "name": person["name"], "created": existing is None}


def rename_person(conn: sqlite3.Connection, person_uid: str, name: str) -> None:
    person = _one(conn, "SELECT id FROM people WHERE uid = ?", (person_uid,), "person")
    conn.execute("UPDATE people SET name = ?, updated_at = ? WHERE id = ?", (_clean_name(name), utcnow(), person["id"]))


def merge_people(conn: sqlite3.Connection, source_uid: str, target_uid: str) -> None:
    """Everything of `source` becomes `target`'s; `source` is removed."""
    if source_uid == target_uid:
        raise PeopleError("a person cannot be merged into itself")
    src = _one(conn, "SELECT id FROM people WHERE uid = ?", (source_uid,), "person")
    dst = _one(conn, "SELECT id FROM people WHERE uid = ?", (target_uid,), "person")
    conn.execute("UPDATE faces SET person_id = ? WHERE person_id = ?", (dst["id"], src["id"]))
    conn.execute("UPDATE clusters SET person_id = ? WHERE person_id = ?", (dst["id"], src["id"]))
    conn.execute("UPDATE face_rejections SET person_id = ? WHERE person_id = ?", (dst["id"], src["id"]))
    conn.execute("DELETE FROM people WHERE id = ?", (src["id"],))


def merge_clusters(conn: sqlite3.Connection, source_uid: str, target_uid: str) -> None:
    if source_uid == target_uid:
        raise PeopleError("a cluster cannot be merged into itself")
    src = _one(conn, "SELECT * FROM clusters WHERE uid = ?", (source_uid,), "cluster")
    dst = _one(conn, "SELECT * FROM clusters WHERE uid = ?", (target_uid,), "cluster")
    conn.execute("UPDATE faces SET cluster_id = ? WHERE cluster_id = ?", (dst["id"], src["id"]))
    if dst["person_id"] is not None:
        conn.execute("UPDATE faces SET person_id = ?, person_source = 'manual' WHERE cluster_id = ?",
                     (dst["person_id"], dst["id"]))
    conn.execute("DELETE FROM clusters WHERE id = ?", (src["id"],))
    refresh_clusters(conn, {dst["id"]})


def split_cluster(conn: sqlite3.Connection, cluster_uid: str, face_uids: list[str]) -> str:
    """Move some faces out of a cluster into a new one; they will not be put back automatically."""
    cluster = _one(conn, "SELECT * FROM clusters WHERE uid = ?", (cluster_uid,), "cluster")
    if not face_uids:
        raise PeopleError("name at least one face to split off")
    now = utcnow()
    new_id = new_cluster(conn, now)
    for uid in face_uids:
        face = _one(conn, "SELECT id, cluster_id FROM faces WHERE uid = ?", (uid,), "face")
        if face["cluster_id"] != cluster["id"]:
            raise PeopleError(f"face {uid} is not in cluster {cluster_uid}")
        conn.execute("INSERT INTO face_rejections (face_id, cluster_id, person_id, created_at) VALUES (?, ?, ?, ?)",
                     (face["id"], cluster["id"], cluster["person_id"], now))
        conn.execute("UPDATE faces SET cluster_id = ?, person_id = NULL, person_source = NULL WHERE id = ?",
                     (new_id, face["id"]))
    refresh_clusters(conn, {cluster["id"], new_id})
    return conn.execute("SELECT uid FROM clusters WHERE id = ?", (new_id,)).fetchone()[0]


def reject_face(conn: sqlite3.Connection, face_uid: str) -> None:
    """"This is not them": the face leaves its person and cluster for good and waits in a cluster of its own."""
    face = _one(conn, "SELECT * FROM faces WHERE uid = ?", (face_uid,), "face")
    now = utcnow()
    conn.execute("INSERT INTO face_rejections (face_id, person_id, cluster_id, created_at) VALUES (?, ?, ?, ?)",
                 (face["id"], face["person_id"], face["cluster_id"], now))
    own = new_cluster(conn, now)
    conn.execute("UPDATE faces SET person_id = NULL, person_source = NULL, similarity = NULL, cluster_id = ?"
                 " WHERE id = ?", (own, face["id"]))
    refresh_clusters(conn, {c for c in (face["cluster_id"], own) if c is not None})


def assign_face(conn: sqlite3.Connection, face_uid: str, person_uid: str) -> None:
    """"This is them": a manual assignment that nothing automatic changes."""
    face = _one(conn, "SELECT id FROM faces WHERE uid = ?", (face_uid,), "face")
    person = _one(conn, "SELECT id FROM people WHERE uid = ?", (person_uid,), "person")
    conn.execute("DELETE FROM face_rejections WHERE face_id = ? AND person_id = ?", (face["id"], person["id"]))
    conn.execute("UPDATE faces SET person_id = ?, person_source = 'manual', similarity = NULL WHERE id = ?",
                 (person["id"], face["id"]))


def set_hidden(conn: sqlite3.Connection, kind: str, uid: str, hidden: bool = True) -> None:
    table = {"person": "people", "cluster": "clusters", "face": "faces"}.get(kind)
    if table is None:
        raise PeopleError(f"cannot hide a {kind!r}; a person, cluster or face can be hidden")
    row = _one(conn, f"SELECT id FROM {table} WHERE uid = ?", (uid,), kind)
    conn.execute(f"UPDATE {table} SET hidden = ? WHERE id = ?", (int(hidden), row["id"]))


# -- reading: one way to count, for the API and the command line ------------------------------------


def _cover_face(conn: sqlite3.Connection, column: str, owner_id: int) -> str | None:
    row = conn.execute(f"SELECT uid FROM faces WHERE {column} = ? AND hidden = 0 AND crop_key IS NOT NULL"
                       f" AND crop_key != '' ORDER BY person_source = 'manual' DESC, score DESC, id LIMIT 1",
                       (owner_id,)).fetchone()
    return row[0] if row else None


def people_list(conn: sqlite3.Connection, *, hidden: bool = False, uid: str | None = None) -> list[dict[str, Any]]:
    """Named people with how many visible faces and photos they have, most first (hidden people
    only with `hidden`; a hidden face never counts)."""
    where = ["1"] if hidden else ["pe.hidden = 0"]
    params: list[Any] = []
    if uid is not None:
        where, params = ["pe.uid = ?"], [uid]
    rows = conn.execute(
        "SELECT pe.id, pe.uid, pe.name, pe.hidden, pe.favorite, pe.created_at,"
        " count(f.id) AS faces, count(DISTINCT f.photo_id) AS photos"
        " FROM people pe LEFT JOIN faces f ON f.person_id = pe.id AND f.hidden = 0"
        f" WHERE {' AND '.join(where)} GROUP BY pe.id ORDER BY faces DESC, pe.name COLLATE NOCASE", params).fetchall()
    return [{"id": r["uid"], "name": r["name"], "hidden": bool(r["hidden"]), "favorite": bool(r["favorite"]),
             "faces": int(r["faces"]), "photos": int(r["photos"]), "cover_face": _cover_face(conn, "person_id", r["id"]),
             "created_at": r["created_at"]} for r in rows]


def clusters_list(conn: sqlite3.Connection, *, hidden: bool = False, min_faces: int = 1) -> list[dict[str, Any]]:
    """Clusters no one has named yet, largest first, counting their visible unassigned faces."""
    rows = conn.execute(
        "SELECT c.id, c.uid, c.hidden, count(f.id) AS faces, count(DISTINCT f.photo_id) AS photos"
        " FROM clusters c JOIN faces f ON f.cluster_id = c.id AND f.hidden = 0 AND f.person_id IS NULL"
        f" WHERE c.person_id IS NULL{'' if hidden else ' AND c.hidden = 0'}"
        " GROUP BY c.id HAVING count(f.id) >= ? ORDER BY faces DESC, c.id", (min_faces,)).fetchall()
    return [{"id": r["uid"], "hidden": bool(r["hidden"]), "faces": int(r["faces"]), "photos": int(r["photos"]),
             "cover_face": _cover_face(conn, "cluster_id", r["id"])} for r in rows]


def faces_of(conn: sqlite3.Connection, column: str, uid: str, *, hidden: bool = False, cursor: int = 0,
             limit: int = 100) -> dict[str, Any]:
    """The faces of a person or a cluster, a page at a time (by face id); `has_crop` says whether
    a crop image exists for it."""
    table = {"person_id": "people", "cluster_id": "clusters"}[column]
    owner = conn.execute(f"SELECT id FROM {table} WHERE uid = ?", (uid,)).fetchone()
    if owner is None:
        raise PeopleError(f"no {'person' if table == 'people' else 'cluster'} {uid!r}")
    rows = conn.execute(
        "SELECT f.id, f.uid, f.x, f.y, f.w, f.h, f.score, f.hidden, f.person_source, f.similarity, f.crop_key,"
        " ph.uid AS photo_uid, ph.thumb_key, pe.uid AS person_uid, pe.name AS person_name, c.uid AS cluster_uid"
        " FROM faces f JOIN photos ph ON ph.id = f.photo_id LEFT JOIN people pe ON pe.id = f.person_id"
        f" LEFT JOIN clusters c ON c.id = f.cluster_id WHERE f.{column} = ? AND f.id > ?"
        f"{'' if hidden else ' AND f.hidden = 0'} ORDER BY f.id LIMIT ?", (owner[0], cursor, limit + 1)).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    faces = [{
        "id": r["uid"], "photo": r["photo_uid"], "thumb_key": r["thumb_key"],
        "box": {"x": r["x"], "y": r["y"], "w": r["w"], "h": r["h"]}, "score": r["score"], "hidden": bool(r["hidden"]),
        "person": None if r["person_uid"] is None else {"id": r["person_uid"], "name": r["person_name"],
                                                       "source": r["person_source"], "similarity": r["similarity"]},
        "cluster": r["cluster_uid"], "has_crop": bool(r["crop_key"]),
    } for r in rows]
    return {"faces": faces, "next_cursor": str(rows[-1]["id"]) if more and rows else None}

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


def list_people(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Named people and unnamed clusters, with face and photo counts (largest first)."""
    people = [dict(r) for r in conn.execute(
        "SELECT p.uid, p.name, p.hidden, count(f.id) AS faces, count(DISTINCT f.photo_id) AS photos"
        " FROM people p LEFT JOIN faces f ON f.person_id = p.id GROUP BY p.id ORDER BY faces DESC, p.name")]
    clusters = [dict(r) for r in conn.execute(
        "SELECT c.uid, c.hidden, count(f.id) AS faces, count(DISTINCT f.photo_id) AS photos"
        " FROM clusters c JOIN faces f ON f.cluster_id = c.id WHERE c.person_id IS NULL"
        " GROUP BY c.id ORDER BY faces DESC, c.id")]
    return [{"kind": "person", **p} for p in people] + [{"kind": "cluster", "name": None, **c} for c in clusters]

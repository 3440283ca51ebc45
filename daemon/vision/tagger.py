"""The tag job: labels, faces, people and the NSFW score for one photo.

Why it reads thumbnails instead of decoding the original: the index job already cut tile_224 (a
centre square, exactly the classifier's input) and fit_720 (the face detector's input) from the
photo's single decode; reading those two small JPEGs costs a few milliseconds, so tagging never
decodes a 12 MP photo a second time and can run later, at a lower priority, without holding the
decoded image in memory in between.

Why user decisions survive: labels a user removed stay as rows marked removed, manual labels are
never replaced by the classifier, and a re-detected face takes over the person, cluster, hidden
flag and rejections of the face it overlaps (IoU), so re-tagging never undoes a user's work.

A model that is missing or broken does not stop the daemon: the tasks that need it are skipped,
the photo remembers which tasks ran (photos.tag_models), and `requeue_backlog` queues the photos
that lack a task once its model is usable again.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from daemon.jobs.pool import WorkerPool
from daemon.jobs.queue import PRIORITY_TAG, Job, enqueue, finish
from daemon.library.thumbnails import ThumbSettings, thumb_path, write_atomic
from daemon.events import bus as ev
from daemon.store.db import Database, Stage
from daemon.timeutil import utcnow
from daemon.vision.faces import Face, FaceDetector, FaceEmbedder, detect_faces
from daemon.vision.labels import Classifier, LabelResult, load_categories, load_rules
from daemon.vision.nsfw import NsfwScorer
from daemon.vision.people import NewCluster, assign_clusters, centroid, match_person
from daemon.vision.runtime import ModelHandle, ModelUnavailable

log = logging.getLogger(__name__)

MODEL_FILES = {
    "labels": "efficientnet_lite0_int8.tflite",
    "faces": "face_detection_full_range.tflite",
    "embeddings": "MobileFaceNet.tflite",
    "nsfw": "open_nsfw_int8.tflite",
}
RULES_FILE = "labels.yml"
FACE_IOU_SAME = 0.5  # a re-detected face overlapping an old one this much is the same face


@dataclass(frozen=True)
class TaggingSettings:
    enabled: bool = True
    labels: bool = True
    faces: bool = True
    nsfw: bool = False
    nsfw_threshold: float = 0.8
    models_dir: Path = Path(__file__).resolve().parents[2] / "models"
    idle_unload: float = 0.0  # seconds; 0 keeps models loaded
    threads: int = 1  # interpreter threads per worker
    face_min_size: float = 30.0  # pixels on the 720 px image
    match_threshold: float = 0.55
    max_labels: int = 5

    def tasks(self) -> list[str]:
        if not self.enabled:
            return []
        return [t for t, on in (("labels", self.labels), ("faces", self.faces), ("nsfw", self.nsfw)) if on]


@dataclass
class TagResult:
    tasks: list[str] = field(default_factory=list)  # tasks that ran
    skipped: dict[str, str] = field(default_factory=dict)  # task -> why not
    labels: list[LabelResult] = field(default_factory=list)
    faces: list[Face] = field(default_factory=list)
    face_crops: list[str] = field(default_factory=list)
    nsfw: float | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class TagOutcome:
    """What the store step did: for events and counters."""

    photo_id: int
    photo_uid: str
    new_labels: list[str] = field(default_factory=list)
    faces: int = 0
    recognized: list[dict[str, Any]] = field(default_factory=list)  # person uid, name, similarity, face uid


class Models:
    """The model handles, created once and shared by every worker (each thread gets its own
    interpreter inside the handle)."""

    def __init__(self, settings: TaggingSettings) -> None:
        self.settings = settings
        idle = settings.idle_unload or None
        self.handles = {
            task: ModelHandle(settings.models_dir / name, num_threads=settings.threads, idle_unload_s=idle)
            for task, name in MODEL_FILES.items()
        }
        wanted = set(settings.tasks())
        if "faces" in wanted:
            wanted.add("embeddings")
        for task, handle in self.handles.items():
            if task not in wanted:
                handle.disable("turned off in the configuration")
        self.rules_error: str | None = None
        self.classifier: Classifier | None = None
        try:
            rules_path = settings.models_dir / RULES_FILE
            self.classifier = Classifier(self.handles["labels"], load_rules(rules_path),
                                         categories=load_categories(rules_path), max_labels=settings.max_labels)
        except Exception as exc:  # a broken labels.yml turns labels off, not the daemon
            self.rules_error = str(exc)
            log.error("labels are off: %s", exc)
        self.detector = FaceDetector(self.handles["faces"], kind="full")
        self.embedder = FaceEmbedder(self.handles["embeddings"])
        self.nsfw = NsfwScorer(self.handles["nsfw"])

    def usable(self, task: str) -> tuple[bool, str]:
        """Whether a task can run now, and why not. MISSING files are looked for again each call."""
        needed = ["faces", "embeddings"] if task == "faces" else [task]
        if task == "labels" and self.classifier is None:
            return False, f"label rules unusable: {self.rules_error}"
        for name in needed:
            ok, why = self.handles[name].available()
            if not ok:
                return False, why
        return True, ""

    def states(self) -> dict[str, dict[str, Any]]:
        out = {}
        for task, handle in self.handles.items():
            out[task] = {
                "file": handle.path.name, "state": handle.state.name.lower(), "reason": handle.reason or None,
                "runtime": handle.runtime_name, "loads": handle.load_count,
                "mean_ms": None if handle.mean_latency_ms is None else round(handle.mean_latency_ms, 2),
            }
        return out

    def unload_idle(self) -> None:
        for handle in self.handles.values():
            handle.unload_if_idle()


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _blob(v: np.ndarray) -> bytes:
    return np.asarray(v, dtype=np.float32).tobytes()


def _vec(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype=np.float32)


class Tagger:
    """Runs tag jobs. Wired by the App: `queue.register("tag", tagger.handle, tagger.failed)`."""

    def __init__(self, db: Database, pool: WorkerPool, *, settings: TaggingSettings, thumbs: Path,
                 thumb_settings: ThumbSettings,
                 on_tagged: Callable[[TagOutcome], None] | None = None) -> None:
        self.db = db
        self.pool = pool
        self.settings = settings
        self.thumbs = thumbs
        self.thumb_settings = thumb_settings
        self.models = Models(settings)
        self.on_tagged = on_tagged
        self.done = 0
        self.seconds = 0.0
        self._recent: list[float] = []  # completion times, for photos/s

    # -- pool step -------------------------------------------------------------------------------------

    def face_crop_path(self, thumb_key: str, index: int) -> Path:
        return self.thumbs / "faces" / thumb_key[:2] / f"{thumb_key}_{index}.jpg"

    def _analyse(self, thumb_key: str) -> TagResult:
        result = TagResult()
        tile = thumb_path(self.thumbs, thumb_key, "tile_224", self.thumb_settings)
        fit = thumb_path(self.thumbs, thumb_key, "fit_720", self.thumb_settings)
        with Image.open(tile) as t, Image.open(fit) as f:
            tile_img, fit_img = t.convert("RGB"), f.convert("RGB")
        for task in self.settings.tasks():
            ok, why = self.models.usable(task)
            if not ok:
                result.skipped[task] = why
                continue
            start = time.perf_counter()
            try:
                if task == "labels":
                    assert self.models.classifier is not None
                    result.labels = self.models.classifier.classify_photo(tile_img, fit_img)
                elif task == "faces":
                    result.faces = detect_faces(fit_img, self.models.detector, self.models.embedder,
                                                min_size_px=self.settings.face_min_size)
                    for i, face in enumerate(result.faces):
                        if face.crop is not None:
                            dest = self.face_crop_path(thumb_key, i)
                            write_atomic(face.crop, dest, self.thumb_settings)
                            result.face_crops.append(str(dest.relative_to(self.thumbs)))
                        else:
                            result.face_crops.append("")
                elif task == "nsfw":
                    result.nsfw = self.models.nsfw.score(tile_img)
            except ModelUnavailable as exc:  # the file went bad between the check and the run
                result.skipped[task] = str(exc)
                continue
            result.tasks.append(task)
            result.timings[task] = time.perf_counter() - start
        return result

    # -- the job ---------------------------------------------------------------------------------------

    async def handle(self, job: Job) -> None:
        photo = await self.db.fetchone("SELECT id, uid, thumb_key FROM photos WHERE id = ?", (job.photo_id,))
        if photo is None or photo["thumb_key"] is None:
            await self.db.write(lambda c: finish(c, job))
            return
        start = time.perf_counter()
        try:
            result = await self.pool.run(self._analyse, photo["thumb_key"])
        except FileNotFoundError:
            # thumbnails went missing (data folder cleaned): re-index makes them and re-queues tagging
            await self.db.write(lambda c: self._requeue_index(c, job, photo["id"]))
            return
        for task, why in result.skipped.items():
            log.info("tagging %s: %s skipped: %s", photo["uid"], task, why)
        outcome = await self.db.write_staged(lambda c, stage: self._store(c, job, photo, result, stage))
        self.done += 1
        now = time.monotonic()
        self.seconds += time.perf_counter() - start
        self._recent = [t for t in self._recent if now - t < 60] + [now]
        if self.on_tagged is not None:
            self.on_tagged(outcome)

    async def failed(self, job: Job, reason: str) -> None:
        log.warning("tagging photo %s failed: %s", job.photo_id, reason)

        def record(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE jobs SET state = 'failed', error = ?, updated_at = ? WHERE id = ?",
                         (reason, utcnow(), job.id))

        await self.db.write(record)

    @staticmethod
    def _requeue_index(conn: sqlite3.Connection, job: Job, photo_id: int) -> None:
        row = conn.execute("SELECT primary_file_id FROM photos WHERE id = ?", (photo_id,)).fetchone()
        if row and row["primary_file_id"]:
            conn.execute("UPDATE files SET state = 'new' WHERE id = ?", (row["primary_file_id"],))
            enqueue(conn, "index", priority=10, file_id=row["primary_file_id"])
        finish(conn, job)

    # -- store step (writer thread) --------------------------------------------------------------------

    def _store(self, conn: sqlite3.Connection, job: Job, photo: sqlite3.Row, result: TagResult,
               stage: Stage) -> TagOutcome:
        """Store the result and stage its events (label.created, face.detected, person.recognized)
        in the same transaction: a crash after the commit cannot lose them, one before it loses both."""
        now = utcnow()
        photo_id = photo["id"]
        outcome = TagOutcome(photo_id=photo_id, photo_uid=photo["uid"])
        if "labels" in result.tasks:
            outcome.new_labels = self._store_labels(conn, photo_id, result.labels, now)
        if "faces" in result.tasks:
            outcome.faces = len(result.faces)
            outcome.recognized = self._store_faces(conn, photo_id, result, now)
        updates: dict[str, Any] = {}
        if "nsfw" in result.tasks and result.nsfw is not None:
            updates["nsfw"] = result.nsfw
            current = conn.execute("SELECT private, sources FROM photos WHERE id = ?", (photo_id,)).fetchone()
            sources = json.loads(current["sources"] or "{}")
            if result.nsfw >= self.settings.nsfw_threshold and sources.get("private") != "manual":
                updates["private"] = 1
                sources["private"] = "estimate"
                updates["sources"] = json.dumps(sources, sort_keys=True)
        done = json.loads(conn.execute("SELECT tag_models FROM photos WHERE id = ?", (photo_id,)).fetchone()[0] or "{}")
        for task in result.tasks:
            done[task] = MODEL_FILES[task]
        updates["tag_models"] = json.dumps(done, sort_keys=True)
        updates["tagged_at"] = now
        conn.execute(f"UPDATE photos SET {', '.join(f'{k} = ?' for k in updates)} WHERE id = ?",
                     (*updates.values(), photo_id))
        finish(conn, job)
        uid = outcome.photo_uid
        for name in outcome.new_labels:
            stage(ev.LABEL_CREATED, {"label": name, "photo": uid})
        if outcome.faces:
            stage(ev.FACE_DETECTED, {"photo": uid, "faces": outcome.faces})
        for r in outcome.recognized:
            stage(ev.PERSON_RECOGNIZED, {"person": r.get("name"), "person_id": r.get("person"), "photo": uid,
                                         "confidence": r.get("similarity"), "face": r.get("face")})
        return outcome

    @staticmethod
    def _store_labels(conn: sqlite3.Connection, photo_id: int, labels: list[LabelResult], now: str) -> list[str]:
        """Replace the classifier's labels; manual and user-removed rows are left alone."""
        created = []
        conn.execute("DELETE FROM photo_labels WHERE photo_id = ? AND source = 'image' AND removed = 0", (photo_id,))
        for label in labels:
            cur = conn.execute(
                "INSERT OR IGNORE INTO labels (name, categories, priority, created_at) VALUES (?, ?, ?, ?)",
                (label.name, json.dumps(list(label.categories)), int(round(label.priority)), now))
            if cur.rowcount:
                created.append(label.name)
            label_id = conn.execute("SELECT id FROM labels WHERE name = ?", (label.name,)).fetchone()[0]
            conn.execute(
                "INSERT INTO photo_labels (photo_id, label_id, confidence, source) VALUES (?, ?, ?, 'image')"
                " ON CONFLICT (photo_id, label_id) DO NOTHING",
                (photo_id, label_id, round(label.confidence, 4)))
        return created

    def _store_faces(self, conn: sqlite3.Connection, photo_id: int, result: TagResult, now: str) -> list[dict[str, Any]]:
        old = conn.execute("SELECT * FROM faces WHERE photo_id = ?", (photo_id,)).fetchall()
        kept_old: set[int] = set()
        new_rows: list[tuple[int, np.ndarray]] = []  # (face id, embedding) still to assign
        for i, face in enumerate(result.faces):
            if face.embedding is None:
                continue
            match = max(old, key=lambda o: _iou(face.box, (o["x"], o["y"], o["w"], o["h"])), default=None)
            same = match is not None and match["id"] not in kept_old and \
                _iou(face.box, (match["x"], match["y"], match["w"], match["h"])) >= FACE_IOU_SAME
            values = (*face.box, float(face.score), json.dumps(np.round(face.keypoints, 5).tolist()),
                      _blob(face.embedding), result.face_crops[i] if i < len(result.face_crops) else None)
            if same:
                # the same face as before: keep the person, cluster, hidden flag and rejections
                conn.execute("UPDATE faces SET x = ?, y = ?, w = ?, h = ?, score = ?, keypoints = ?, embedding = ?,"
                             " crop_key = ? WHERE id = ?", (*values, match["id"]))
                kept_old.add(match["id"])
                if match["person_id"] is None and match["cluster_id"] is None:
                    new_rows.append((match["id"], face.embedding))
                continue
            cur = conn.execute(
                "INSERT INTO faces (uid, photo_id, x, y, w, h, score, keypoints, embedding, crop_key, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (secrets.token_hex(8), photo_id, *values, now))
            new_rows.append((int(cur.lastrowid), face.embedding))
        for o in old:
            if o["id"] in kept_old:
                continue
            decided = o["person_source"] == "manual" or o["hidden"] or conn.execute(
                "SELECT 1 FROM face_rejections WHERE face_id = ?", (o["id"],)).fetchone()
            if not decided:  # an automatic face the detector no longer finds
                conn.execute("DELETE FROM faces WHERE id = ?", (o["id"],))
        touched = {o["cluster_id"] for o in old if o["cluster_id"] is not None}
        recognized = self._assign(conn, new_rows, now)
        refresh_clusters(conn, touched | {c for c in _clusters_of(conn, [f for f, _ in new_rows])})
        return recognized

    def _assign(self, conn: sqlite3.Connection, rows: list[tuple[int, np.ndarray]], now: str) -> list[dict[str, Any]]:
        """Named people first (faces users confirmed), then incremental clusters."""
        if not rows:
            return []
        people: dict[int, list[np.ndarray]] = {}
        for r in conn.execute("SELECT person_id, embedding FROM faces WHERE person_id IS NOT NULL"
                              " AND person_source = 'manual'"):
            people.setdefault(r["person_id"], []).append(_vec(r["embedding"]))
        people_arrays = {pid: np.stack(v) for pid, v in people.items()}
        recognized: list[dict[str, Any]] = []
        unmatched: list[tuple[int, np.ndarray]] = []
        for face_id, emb in rows:
            hit = match_person(emb, people_arrays, threshold=self.settings.match_threshold)
            if hit is None:
                unmatched.append((face_id, emb))
                continue
            person_id, similarity = hit
            cluster = conn.execute("SELECT id FROM clusters WHERE person_id = ? ORDER BY id LIMIT 1",
                                   (person_id,)).fetchone()
            conn.execute("UPDATE faces SET person_id = ?, person_source = 'auto', similarity = ?, cluster_id = ?"
                         " WHERE id = ?", (person_id, round(similarity, 4), cluster["id"] if cluster else None, face_id))
            p = conn.execute("SELECT uid, name, hidden FROM people WHERE id = ?", (person_id,)).fetchone()
            face_uid = conn.execute("SELECT uid FROM faces WHERE id = ?", (face_id,)).fetchone()[0]
            if not p["hidden"]:
                recognized.append({"person": p["uid"], "name": p["name"], "similarity": round(similarity, 4),
                                   "face": face_uid})
        if unmatched:
            clusters = {r["id"]: _vec(r["centroid"]) for r in conn.execute(
                "SELECT id, centroid FROM clusters WHERE person_id IS NULL AND centroid IS NOT NULL")}
            ids = [f for f, _ in unmatched]
            marks = ",".join("?" * len(ids))
            rejected = {(r["face_id"], r["cluster_id"]) for r in conn.execute(
                f"SELECT face_id, cluster_id FROM face_rejections WHERE cluster_id IS NOT NULL AND face_id IN ({marks})",
                ids)}
            keys = assign_clusters([e for _, e in unmatched], clusters, threshold=self.settings.match_threshold,
                                   face_ids=ids, rejected=rejected)
            made: dict[int, int] = {}
            for (face_id, _), key in zip(unmatched, keys):
                if isinstance(key, NewCluster):
                    if key.number not in made:
                        made[key.number] = new_cluster(conn, now)
                    cluster_id = made[key.number]
                else:
                    cluster_id = key
                conn.execute("UPDATE faces SET cluster_id = ? WHERE id = ?", (cluster_id, face_id))
        return recognized

    # -- backlog and status --------------------------------------------------------------------------------

    async def requeue_backlog(self) -> int:
        """Queue photos that lack a task whose model is usable now (a model appeared or was fixed)."""
        usable = [t for t in self.settings.tasks() if self.models.usable(t)[0]]
        if not usable:
            return 0

        def queue(conn: sqlite3.Connection) -> int:
            count = 0
            rows = conn.execute("SELECT id, tag_models FROM photos WHERE thumb_key IS NOT NULL"
                                " AND id NOT IN (SELECT photo_id FROM jobs WHERE kind = 'tag' AND photo_id IS NOT NULL)")
            for row in rows.fetchall():
                done = json.loads(row["tag_models"] or "{}")
                if any(done.get(t) != MODEL_FILES[t] for t in usable):
                    enqueue(conn, "tag", priority=PRIORITY_TAG, photo_id=row["id"])
                    count += 1
            return count

        return await self.db.write(queue)

    def rate(self) -> float:
        """Photos tagged per second over the last minute."""
        now = time.monotonic()
        recent = [t for t in self._recent if now - t < 60]
        if len(recent) < 2:
            return 0.0
        return round(len(recent) / max(now - recent[0], 1e-3), 2)

    def status(self) -> dict[str, Any]:
        return {"enabled": self.settings.enabled, "tasks": self.settings.tasks(), "models": self.models.states(),
                "photos_per_s": self.rate(), "tagged": self.done}


def new_cluster(conn: sqlite3.Connection, now: str) -> int:
    cur = conn.execute("INSERT INTO clusters (uid, created_at, updated_at) VALUES (?, ?, ?)",
                       (secrets.token_hex(8), now, now))
    return int(cur.lastrowid)


def _clusters_of(conn: sqlite3.Connection, face_ids: list[int]) -> set[int]:
    if not face_ids:
        return set()
    marks = ",".join("?" * len(face_ids))
    return {r[0] for r in conn.execute(
        f"SELECT DISTINCT cluster_id FROM faces WHERE id IN ({marks}) AND cluster_id IS NOT NULL", face_ids)}


def refresh_clusters(conn: sqlite3.Connection, cluster_ids: set[int]) -> None:
    """Recompute size and centroid of clusters whose faces changed; drop empty unnamed ones."""
    now = utcnow()
    for cid in cluster_ids:
        rows = conn.execute("SELECT embedding FROM faces WHERE cluster_id = ?", (cid,)).fetchall()
        if not rows:
            conn.execute("DELETE FROM clusters WHERE id = ? AND person_id IS NULL AND hidden = 0", (cid,))
            continue
        c = centroid(np.stack([_vec(r["embedding"]) for r in rows]))
        conn.execute("UPDATE clusters SET centroid = ?, size = ?, updated_at = ? WHERE id = ?",
                     (_blob(c), len(rows), now, cid))

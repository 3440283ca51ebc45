"""The index job: one file in, one photo's rows and thumbnails out.

A job runs in four steps, each where it belongs:
1. hash (pool): SHA-1 of the content, which names the thumbnails and recognises moved files and
   exact duplicates;
2. look up files with the same hash (reader);
3. extract (pool): metadata, one decode for every thumbnail and the pixel analysis, the place;
4. store (writer): one transaction that files the result under its photo and deletes the job.

Several files can make one photo: RAW+JPEG, a Live Photo's still and video (same base name, or
the same Apple content identifier), alternates such as a HEIC and its JPEG export. The store
step decides the photo inside the writer transaction, so two files of one stack indexed at the
same moment by two workers still end up in one photo. The file whose kind ranks best (image,
then RAW, then video) is the primary: its pixels make the thumbnails, its metadata wins; the
others only fill fields that are still empty.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import sqlite3
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from daemon.jobs.pool import WorkerPool
from daemon.jobs.failures import LibraryUnavailable, Transient, classify, is_transient, judging_version
from daemon.jobs.queue import PRIORITY_TAG, Job, enqueue, finish
from daemon.library.decode import DecodeError, DecodeLimits
from daemon.library.exiftool import ExifTool
from daemon.library.formats import PRIMARY_RANK, Kind
from daemon.library.gate import Gate
from daemon.library.metadata import Metadata, read_metadata
from daemon.library.motion import find_motion_video
from daemon.library.quality import quality_score
from daemon.library.render import Rendered, render
from daemon.library.scanner import display_path, refresh_photo_offline, split_rel, stem_of
from daemon.library.sidecars import sidecar_candidates
from daemon.library.sources import Source, may_replace
from daemon.library.thumbnails import INDEX_SIZES, ThumbSettings, thumb_path
from daemon.library.volume import LibraryVolume
from daemon.places.index import Place, PlaceIndex
from daemon.store.db import Database, Stage
from daemon.timeutil import utcnow

log = logging.getLogger(__name__)

HASH_CHUNK = 1 << 20

# Photo columns filled from metadata (the export and the API use the same names).
METADATA_FIELDS = (
    "taken_at", "taken_offset", "taken_at_utc", "make", "model", "lens", "software", "iso", "f_number",
    "exposure_time", "focal_length", "focal_length_35", "lat", "lng", "alt", "orientation", "width",
    "height", "rating", "title", "description", "keywords", "content_identifier", "duration",
    "video_codec", "audio_codec", "fps",
)
PLACE_FIELDS = ("city", "region", "country", "country_code")
ANALYSIS_FIELDS = ("main_color", "color_grid", "luminance", "chroma", "mono", "shape", "megapixels",
                   "phash", "placeholder", "sharpness")
# A Live Photo's video is only paired by name when it is this short (seconds).
LIVE_MAX_SECONDS = 10.0


@dataclass
class StageTimes:
    """Seconds spent per stage, summed over every job (the benchmark prints them)."""

    totals: dict[str, float] = field(default_factory=dict)
    files: int = 0

    def add(self, timings: dict[str, float]) -> None:
        for stage, seconds in timings.items():
            self.totals[stage] = self.totals.get(stage, 0.0) + seconds


@dataclass
class Extracted:
    """What the pool produced for one file."""

    sha1: str
    size: int
    mtime_ns: int
    kind: Kind
    metadata: Metadata | None = None
    rendered: Rendered | None = None
    place: Place | None = None
    motion: Any = None
    sidecars: list[bytes] = field(default_factory=list)
    duplicate_of: int | None = None  # an existing file with the same content
    moved_from: int | None = None  # a vanished file with the same content: this is its new path
    error: str | None = None  # could not be indexed (no photo is made for it)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class StoreOutcome:
    """What the store step did, for events and logs."""

    file_id: int
    photo_id: int | None = None
    photo_uid: str | None = None
    created: bool = False
    moved: bool = False
    duplicate: bool = False
    error: str | None = None


# Called inside the store transaction with what was stored and the transaction's `stage` (the
# events service stages the photo's events there, so they commit together with the photo).
TxHook = Callable[[sqlite3.Connection, "StoreOutcome", Stage], None]


class Indexer:
    """Runs index jobs. Wired by the App: `queue.register("index", indexer.handle, indexer.failed)`."""

    def __init__(self, db: Database, pool: WorkerPool, *, root: Path, thumbs: Path,
                 settings: ThumbSettings, limits: DecodeLimits, places: PlaceIndex | None,
                 exiftool: str = "exiftool", exiftool_timeout: float = 20.0, ffmpeg: str = "ffmpeg",
                 ffprobe: str = "ffprobe", tagging: bool = False,
                 on_stored: Callable[[StoreOutcome], None] | None = None,
                 tx_hooks: list[TxHook] | None = None, gate: Gate | None = None) -> None:
        self.db = db
        self.pool = pool
        self.root = root
        # every file and sidecar is opened through the gate: nothing outside the library is read
        self.gate = gate if gate is not None else Gate(root)
        # a file that cannot be opened because its drive is gone waits for the drive (daemon.library.volume)
        self.volume = LibraryVolume(db, pool, root)
        self.thumbs = thumbs
        self.settings = settings
        self.limits = limits
        self.places = places
        self.exiftool_cmd = exiftool
        self.exiftool_timeout = exiftool_timeout
        self.ffmpeg = ffmpeg
        self.ffprobe = ffprobe
        self.tagging = tagging
        self.on_stored = on_stored
        self.tx_hooks: list[TxHook] = tx_hooks if tx_hooks is not None else []
        self.times = StageTimes()

    # -- helpers run in worker threads --------------------------------------------------------------

    def _exiftool(self) -> ExifTool:
        return self.pool.resource("exiftool", lambda: ExifTool(self.exiftool_cmd, timeout=self.exiftool_timeout))

    def _abs(self, rel: bytes) -> bytes:
        return os.path.join(os.fsencode(self.root), rel)

    def _hash(self, rel: bytes) -> tuple[tuple[str, int, int], float]:
        """((sha1, size, mtime_ns), seconds spent): timed here, not around pool.run, so the
        benchmark's stage figure excludes waiting for a free worker."""
        start = time.perf_counter()
        digest = hashlib.sha1()
        with self.gate.open(rel) as opened, open(opened.fd, "rb", closefd=False) as fh:
            st = opened.stat
            while chunk := fh.read(HASH_CHUNK):
                digest.update(chunk)
        return (digest.hexdigest(), st.st_size, st.st_mtime_ns), time.perf_counter() - start

    def _extract(self, row: sqlite3.Row, hashed: tuple[str, int, int], same_content: list[sqlite3.Row]) -> Extracted:
        with ExitStack() as pins:  # the gate's pinned paths live until the extraction is done
            return self._extract_pinned(pins, row, hashed, same_content)

    def _extract_pinned(self, pins: ExitStack, row: sqlite3.Row, hashed: tuple[str, int, int],
                        same_content: list[sqlite3.Row]) -> Extracted:
        sha1, size, mtime_ns = hashed
        kind = Kind(row["kind"])
        out = Extracted(sha1=sha1, size=size, mtime_ns=mtime_ns, kind=kind)
        for other in same_content:
            if other["state"] == "duplicate" or other["photo_id"] is None:
                continue
            if os.path.exists(self._abs(bytes(other["path"]))):
                out.duplicate_of = other["id"]
            else:
                out.moved_from = other["id"]
            return out
        if size == 0:
            out.error = "empty file (0 bytes)"
            return out

        rel = bytes(row["path"])
        try:
            path = pins.enter_context(self.gate.pinned(rel))
        except OSError as exc:
            if is_transient(exc):
                raise  # gone for now, not bad: handle() decides whether to wait or mark it offline
            out.error = f"cannot read file: {exc.strerror or exc}"
            return out
        t0 = time.perf_counter()
        found = [self.gate.relative(p) for p in sidecar_candidates(Path(os.fsdecode(self._abs(rel)))) if p.is_file()]
        out.sidecars, sidecar_paths = self.gate.pin_each(pins, found, out.warnings)
        exiftool = self._exiftool()
        try:
            out.metadata = read_metadata(path, exiftool=exiftool, sidecars=sidecar_paths,
                                         mtime=mtime_ns / 1e9, ffprobe=self.ffprobe)
            out.warnings += out.metadata.warnings
        except OSError as exc:
            if is_transient(exc):
                raise
            out.error = f"cannot read file: {exc.strerror or exc}"
            return out
        out.timings["metadata"] = time.perf_counter() - t0

        unchanged = row["sha1"] == sha1 and row["state"] == "indexed" and self._thumbs_exist(sha1)
        if not unchanged:
            try:
                out.rendered = render(
                    path, kind=kind, content_hash=sha1, thumbs_root=self.thumbs, settings=self.settings,
                    limits=self.limits, raw_preview=self.raw_preview if kind is Kind.RAW else None,
                    ffmpeg=self.ffmpeg)
                out.timings.update(out.rendered.timings)
            except DecodeError as exc:
                if is_transient(exc):
                    raise  # the read failed (a vanished drive, a full disk): not a verdict on the file
                out.error = str(exc)
                return out
        if kind is Kind.IMAGE:
            try:
                out.motion = find_motion_video(path)
            except OSError as exc:
                out.warnings.append(f"motion photo check failed: {exc}")

        lat, lng = out.metadata.get("lat"), out.metadata.get("lng")
        if self.places is not None and lat is not None and lng is not None:
            t1 = time.perf_counter()
            out.place = self.places.lookup(lat, lng)
            out.timings["place"] = time.perf_counter() - t1
        return out

    def raw_preview(self, path: Path) -> bytes | None:
        tool = self._exiftool()
        for tag in ("JpgFromRaw", "PreviewImage", "OtherImage"):
            data = tool.binary(path, tag)
            if data:
                return data
        return None

    def _thumbs_exist(self, sha1: str) -> bool:
        return all(thumb_path(self.thumbs, sha1, size, self.settings).exists() for size in INDEX_SIZES)

    # -- the job ------------------------------------------------------------------------------------

    async def handle(self, job: Job) -> None:
        row = await self.db.fetchone("SELECT * FROM files WHERE id = ?", (job.file_id,))
        if row is None:  # the file row went away (e.g. merged into a moved file): nothing to do
            await self.db.write(lambda c: finish(c, job))
            return
        try:
            hashed, hash_time = await self.pool.run(self._hash, bytes(row["path"]))
            same = await self.db.fetchall(
                "SELECT id, path, state, photo_id FROM files WHERE sha1 = ? AND id != ? ORDER BY id",
                (hashed[0], row["id"]))
            extracted = await self.pool.run(self._extract, row, hashed, same)
        except Exception as exc:
            failure = classify(exc)
            if isinstance(failure, Transient) and failure.scope != "storage":
                await self._unreadable_now(job, row, exc, failure)
                return
            if isinstance(exc, PermissionError):
                problem = await self.volume.problem()  # an unmounted share's mount point may refuse us
                if problem is not None:
                    raise LibraryUnavailable(problem) from exc
                await self._record_error(job, row, f"cannot read file: {exc.strerror}")
                return
            raise  # permanent (the queue retries, then records it) or a full disk (the queue pauses)
        extracted.timings["hash"] = hash_time
        t1 = time.perf_counter()
        outcome = await self.db.write_staged(
            lambda c, stage: self._with_hooks(c, stage, self._store(c, job, row, extracted)))
        extracted.timings["store"] = time.perf_counter() - t1
        self.times.add(extracted.timings)
        self.times.files += 1
        if self.on_stored is not None:
            self.on_stored(outcome)

    async def _unreadable_now(self, job: Job, row: sqlite3.Row, exc: Exception, failure: Transient) -> None:
        """The file could not be read for a reason that is not about its content. If the library
        is gone (unplugged, empty mount point, another volume), every index job waits for it and
        nothing is marked offline. If only this file is gone, it is offline, and the scan that
        sees it again queues it again (daemon.library.scanner.needs_index). Anything else (a
        share failing with EIO on this file) waits here with backoff (the queue's job)."""
        problem = await self.volume.problem()
        if problem is not None:
            raise LibraryUnavailable(problem) from exc
        if failure.scope == "gone":
            if not await self.pool.run(os.path.lexists, self._abs(bytes(row["path"]))):
                await self.db.write(lambda c: self._vanished(c, job, row))
                return
            # the file is there: what was missing was something else (a helper program): a verdict
            await self._record_error(job, row, f"cannot read file: {failure.reason}")
            return
        raise exc

    async def _record_error(self, job: Job, row: sqlite3.Row, reason: str) -> None:
        outcome = await self.db.write_staged(
            lambda c, stage: self._with_hooks(c, stage, self._store_error(c, job, row, reason)))
        if self.on_stored is not None:
            self.on_stored(outcome)

    async def failed(self, job: Job, reason: str) -> None:
        """The job failed more often than allowed: record the reason on the file and drop the job."""
        row = await self.db.fetchone("SELECT * FROM files WHERE id = ?", (job.file_id,))
        if row is None:
            await self.db.write(lambda c: finish(c, job))
            return
        outcome = await self.db.write_staged(
            lambda c, stage: self._with_hooks(c, stage, self._store_error(c, job, row, f"indexing failed: {reason}")))
        if self.on_stored is not None:
            self.on_stored(outcome)

    # -- store step: runs in the writer thread --------------------------------------------------------

    def _with_hooks(self, conn: sqlite3.Connection, stage: Stage, outcome: StoreOutcome) -> StoreOutcome:
        for hook in self.tx_hooks:
            hook(conn, outcome, stage)
        return outcome

    @staticmethod
    def _vanished(conn: sqlite3.Connection, job: Job, row: sqlite3.Row) -> None:
        now = utcnow()
        conn.execute("UPDATE files SET offline = 1, missing_since = ?, updated_at = ? WHERE id = ?",
                     (now, now, row["id"]))
        refresh_photo_offline(conn)
        finish(conn, job)

    @staticmethod
    def _store_error(conn: sqlite3.Connection, job: Job, row: sqlite3.Row, reason: str,
                     extracted: Extracted | None = None) -> StoreOutcome:
        conn.execute(
            "UPDATE files SET state = 'error', error = ?, error_version = ?, warnings = ?, sha1 = coalesce(?, sha1),"
            " indexed_size = size, indexed_mtime_ns = mtime_ns, updated_at = ? WHERE id = ?",
            (reason, judging_version(), json.dumps(extracted.warnings) if extracted and extracted.warnings else None,
             extracted.sha1 if extracted else None, utcnow(), row["id"]))
        finish(conn, job)
        return StoreOutcome(file_id=row["id"], photo_id=row["photo_id"], error=reason)

    def _store(self, conn: sqlite3.Connection, job: Job, row: sqlite3.Row, ex: Extracted) -> StoreOutcome:
        now = utcnow()
        file_id = row["id"]
        current = conn.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
        if current is None:
            finish(conn, job)
            return StoreOutcome(file_id=file_id)

        if ex.moved_from is not None:
            return self._store_move(conn, job, current, ex)
        if ex.duplicate_of is not None:
            conn.execute(
                "UPDATE files SET state = 'duplicate', duplicate_of = ?, sha1 = ?, photo_id = NULL, error = NULL,"
                " indexed_size = ?, indexed_mtime_ns = ?, updated_at = ? WHERE id = ?",
                (ex.duplicate_of, ex.sha1, ex.size, ex.mtime_ns, now, file_id))
            finish(conn, job)
            return StoreOutcome(file_id=file_id, duplicate=True)
        if ex.error is not None:
            return self._store_error(conn, job, current, ex.error, ex)

        assert ex.metadata is not None
        meta = ex.metadata
        photo_id = current["photo_id"]
        created = False
        if photo_id is None:
            photo_id = self._find_stack(conn, current, ex)
        if photo_id is None:
            photo_id = self._new_photo(conn, now)
            created = True
        photo = conn.execute("SELECT * FROM photos WHERE id = ?", (photo_id,)).fetchone()

        primary = self._is_primary(conn, photo, current, ex.kind)
        role = "primary" if primary else self._secondary_role(ex.kind)
        if primary and photo["primary_file_id"] not in (None, file_id):
            # demote the previous primary (e.g. a RAW when its JPEG arrives)
            old = conn.execute("SELECT kind FROM files WHERE id = ?", (photo["primary_file_id"],)).fetchone()
            if old is not None:
                conn.execute("UPDATE files SET role = ? WHERE id = ?",
                             (self._secondary_role(Kind(old["kind"])), photo["primary_file_id"]))

        updates = self._merge(photo, meta, ex, fill_only=not primary)
        if primary:
            updates["primary_file_id"] = file_id
            updates["thumb_key"] = ex.sha1
            if ex.rendered is not None:
                updates["width"] = ex.rendered.width
                updates["height"] = ex.rendered.height
                for name in ANALYSIS_FIELDS:
                    value = getattr(ex.rendered.analysis, name)
                    updates[name] = json.dumps(value) if isinstance(value, list) else value
            if ex.motion is not None:
                updates["motion_offset"] = ex.motion.offset
                updates["motion_length"] = ex.motion.length
        merged = {**dict(photo), **updates}
        updates["type"] = self._photo_type(conn, photo_id, file_id, ex.kind, merged)
        score, review = quality_score(
            favorite=bool(merged["favorite"]),
            date_source=_source_of(merged, "taken_at"),
            has_place=merged.get("country_code") is not None,
            megapixels=float(merged.get("megapixels") or 0.0),
            is_photograph=bool(merged.get("make") or merged.get("model")),
            sharpness=merged.get("sharpness"),
        )
        updates["quality"], updates["review"] = score, int(review)
        updates["offline"] = 0
        updates["updated_at"] = now
        updates["indexed_at"] = now
        columns = ", ".join(f"{k} = ?" for k in updates)
        conn.execute(f"UPDATE photos SET {columns} WHERE id = ?", (*updates.values(), photo_id))

        conn.execute(
            "UPDATE files SET photo_id = ?, role = ?, sha1 = ?, state = 'indexed', error = NULL, warnings = ?,"
            " indexed_size = ?, indexed_mtime_ns = ?, offline = 0, missing_since = NULL, updated_at = ?"
            " WHERE id = ?",
            (photo_id, role, ex.sha1, json.dumps(ex.warnings) if ex.warnings else None,
             ex.size, ex.mtime_ns, now, file_id))
        for sidecar in ex.sidecars:
            conn.execute(
                "UPDATE files SET photo_id = ?, role = 'sidecar', state = 'indexed', updated_at = ?"
                " WHERE path = ?", (photo_id, now, sidecar))
        if self.tagging and primary and ex.rendered is not None:
            enqueue(conn, "tag", priority=PRIORITY_TAG, photo_id=photo_id)
        finish(conn, job)
        return StoreOutcome(file_id=file_id, photo_id=photo_id, photo_uid=photo["uid"], created=created)

    @staticmethod
    def _store_move(conn: sqlite3.Connection, job: Job, current: sqlite3.Row, ex: Extracted) -> StoreOutcome:
        """The file at a new path is one that vanished from its old path: move the old row here so
        the photo keeps its id, albums, labels and edits."""
        now = utcnow()
        old_id = ex.moved_from
        conn.execute("DELETE FROM jobs WHERE file_id = ? AND id != ?", (current["id"], job.id))
        finish(conn, job)
        conn.execute("DELETE FROM files WHERE id = ?", (current["id"],))
        folder, name = split_rel(bytes(current["path"]))
        conn.execute(
            "UPDATE files SET path = ?, path_text = ?, dir = ?, stem = ?, size = ?, mtime_ns = ?, inode = ?,"
            " indexed_size = ?, indexed_mtime_ns = ?, offline = 0, missing_since = NULL, updated_at = ? WHERE id = ?",
            (bytes(current["path"]), current["path_text"], folder, stem_of(name), ex.size, ex.mtime_ns,
             current["inode"], ex.size, ex.mtime_ns, now, old_id))
        refresh_photo_offline(conn)
        photo = conn.execute("SELECT p.id, p.uid FROM photos p JOIN files f ON f.photo_id = p.id WHERE f.id = ?",
                             (old_id,)).fetchone()
        return StoreOutcome(file_id=old_id, photo_id=photo["id"] if photo else None,
                            photo_uid=photo["uid"] if photo else None, moved=True)

    @staticmethod
    def _new_photo(conn: sqlite3.Connection, now: str) -> int:
        uid = secrets.token_hex(8)
        cur = conn.execute("INSERT INTO photos (uid, added_at, updated_at) VALUES (?, ?, ?)", (uid, now, now))
        return int(cur.lastrowid)

    @staticmethod
    def _find_stack(conn: sqlite3.Connection, row: sqlite3.Row, ex: Extracted) -> int | None:
        """The photo this file joins: same Apple content identifier, or same folder and base name."""
        assert ex.metadata is not None
        cid = ex.metadata.get("content_identifier")
        if cid:
            hit = conn.execute(
                "SELECT id FROM photos WHERE content_identifier = ? ORDER BY id LIMIT 1", (cid,)).fetchone()
            if hit is not None:
                return int(hit["id"])
        partners = conn.execute(
            "SELECT f.photo_id, f.kind, p.duration FROM files f JOIN photos p ON p.id = f.photo_id"
            " WHERE f.dir = ? AND f.stem = ? AND f.kind != 'sidecar' AND f.id != ? AND f.state = 'indexed'"
            " ORDER BY f.id", (bytes(row["dir"]), row["stem"], row["id"])).fetchall()
        for p in partners:
            other = Kind(p["kind"])
            if {other, ex.kind} == {Kind.IMAGE, Kind.VIDEO} or {other, ex.kind} == {Kind.RAW, Kind.VIDEO}:
                duration = ex.metadata.get("duration") if ex.kind is Kind.VIDEO else p["duration"]
                if duration is not None and duration > LIVE_MAX_SECONDS:
                    continue  # a real clip that happens to share a name is its own photo
            return int(p["photo_id"])
        return None

    @staticmethod
    def _is_primary(conn: sqlite3.Connection, photo: sqlite3.Row, row: sqlite3.Row, kind: Kind) -> bool:
        if photo["primary_file_id"] in (None, row["id"]):
            return True
        cur = conn.execute("SELECT kind, state FROM files WHERE id = ?", (photo["primary_file_id"],)).fetchone()
        if cur is None or cur["state"] != "indexed":
            return True
        return PRIMARY_RANK[kind] < PRIMARY_RANK[Kind(cur["kind"])]

    @staticmethod
    def _secondary_role(kind: Kind) -> str:
        return {Kind.RAW: "raw", Kind.VIDEO: "live", Kind.IMAGE: "alternate"}.get(kind, "alternate")

    @staticmethod
    def _photo_type(conn: sqlite3.Connection, photo_id: int, file_id: int, kind: Kind, merged: dict[str, Any]) -> str:
        kinds = {Kind(r["kind"]) for r in conn.execute(
            "SELECT kind FROM files WHERE photo_id = ? AND kind != 'sidecar' AND id != ? AND state = 'indexed'",
            (photo_id, file_id))}
        kinds.add(kind)
        still = Kind.IMAGE in kinds or Kind.RAW in kinds
        if still and (Kind.VIDEO in kinds or merged.get("motion_offset")):
            return "live"
        if still:
            return "image" if Kind.IMAGE in kinds else "raw"
        return "video"

    @staticmethod
    def _merge(photo: sqlite3.Row, meta: Metadata, ex: Extracted, *, fill_only: bool) -> dict[str, Any]:
        """Column updates from this file's metadata, honouring each field's stored source."""
        sources: dict[str, str] = json.loads(photo["sources"] or "{}")
        updates: dict[str, Any] = {}
        for name in METADATA_FIELDS:
            if name not in meta.fields:
                continue
            value, source = meta.fields[name]
            if value is None or value == "" or value == []:
                continue
            stored = sources.get(name)
            stored_src = Source.parse(stored) if stored else None
            if fill_only and photo[name] not in (None, "", "[]"):
                continue
            if not may_replace(stored_src, source):
                continue
            updates[name] = json.dumps(value) if name == "keywords" else value
            sources[name] = source.label
        if "taken_at_utc" not in updates and "taken_at" in updates:
            updates["taken_at_utc"] = _utc_of(updates["taken_at"], updates.get("taken_offset", photo["taken_offset"]))
        # A place a user set or removed by hand is never replaced by one from the file.
        if ex.place is not None and sources.get("place") != "manual" and ("lat" in updates or photo["country_code"] is None):
            place = ex.place
            updates.update(city=place.city or None, region=place.region or None,
                           country=place.country or None, country_code=place.country_code or None)
            sources["place"] = sources.get("lat", "estimate")
        updates["sources"] = json.dumps(sources, sort_keys=True)
        return updates


def _source_of(merged: dict[str, Any], name: str) -> Source | None:
    label = json.loads(merged.get("sources") or "{}").get(name)
    return Source.parse(label) if label else None


def _utc_of(taken_at: str | None, offset: int | None) -> str | None:
    """UTC time from a local time and its offset in minutes, when both are known."""
    if not taken_at or offset is None:
        return None
    from datetime import datetime, timedelta
    try:
        local = datetime.fromisoformat(taken_at[:19])
    except ValueError:
        return None
    return (local - timedelta(minutes=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["Indexer", "StoreOutcome", "StageTimes", "METADATA_FIELDS", "display_path"]

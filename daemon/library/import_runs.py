"""Server-side imports: copy (or move) a folder's photos into the library's dated folders, as a
background task with progress and a report.

One import runs at a time (two imports of overlapping folders would race for the same names,
and on a Pi the disk is the bottleneck anyway). The steps of each file run in the worker pool
(daemon.library.importer); this module only orders them, keeps the progress and stores the report.

Reports are JSON documents in `<data>/imports/<id>.json`, written when the run starts and when it
ends (atomically: a temporary file renamed). They are write-once documents nobody queries by
field, so they need no table; a report still marked "running" that no task owns was cut short by
a crash or a restart and is shown as "interrupted".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.events import bus as ev
from daemon.library.exiftool import ExifTool
from daemon.library.importer import (Cancelled, CopyFailed, Group, ImportRefused, check_layout, check_source,
                                     copy_verified, dated_base, dated_folder, new_sidecar_name, plan_import,
                                     sha1_of, taken_time)
from daemon.system.diskspace import MIB, free_bytes
from daemon.timeutil import utcnow

if TYPE_CHECKING:  # pragma: no cover
    from daemon.app import App

log = logging.getLogger(__name__)

REPORT_ID = re.compile(r"^[0-9a-f]{16}$")
REPORTS_KEPT = 200


class ImportBusy(Exception):
    """Another import is running; one at a time."""


@dataclass
class ImportReport:
    """What an import did: every file copied, moved, skipped (duplicates) or failed, with reasons."""

    id: str
    source: str
    move: bool
    state: str = "running"  # running | finished | failed | interrupted
    started_at: str = field(default_factory=utcnow)
    finished_at: str | None = None
    error: str | None = None  # why the whole run failed (a file's failure is in `failed`)
    files: int = 0  # media and sidecars found
    done: int = 0
    bytes: int = 0
    bytes_done: int = 0
    copied: list[dict[str, Any]] = field(default_factory=list)  # {source, target, sha1, size}
    moved: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {source, reason, duplicate_of?}
    failed: list[dict[str, Any]] = field(default_factory=list)  # {source, reason}
    ignored: list[str] = field(default_factory=list)  # not photos or videos (the first 50)
    ignored_count: int = 0
    folders: list[str] = field(default_factory=list)  # library folders that received files

    def counts(self) -> dict[str, int]:
        return {"copied": len(self.copied), "moved": len(self.moved), "skipped": len(self.skipped),
                "failed": len(self.failed), "ignored": self.ignored_count}

    def progress(self) -> dict[str, Any]:
        return {"files": self.files, "done": self.done, "bytes": self.bytes, "bytes_done": self.bytes_done,
                "percent": round(100.0 * self.done / self.files, 1) if self.files else (100.0 if self.finished_at else 0.0)}

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["counts"] = self.counts()
        out["progress"] = self.progress()
        return out

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.as_dict().items()
                if k not in ("copied", "moved", "skipped", "failed", "ignored", "folders")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ImportReport":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class ImportRuns:
    """Owned by the App as `app.imports`: starts imports, keeps the running one's progress."""

    def __init__(self, app: "App") -> None:
        self.app = app
        cfg = app.config
        self.layout = check_layout(cfg["import.layout"])
        self.reports_dir = app.data / "imports"
        self.current: ImportReport | None = None
        self._task: asyncio.Task[ImportReport] | None = None
        self._cancel = threading.Event()
        self._lock = asyncio.Lock()

    # -- starting and waiting ------------------------------------------------------------------------

    async def start(self, folder: Path | str, *, move: bool = False) -> ImportReport:
        """Check the folder and start importing it in the background. ImportRefused for a folder
        that cannot be imported, ImportBusy while another import runs."""
        async with self._lock:
            if self._task is not None and not self._task.done():
                assert self.current is not None
                raise ImportBusy(f"an import of {self.current.source} is running (id {self.current.id}); "
                                 "wait for it to finish")
            app = self.app
            assert app.pool is not None
            source = await app.pool.run(check_source, Path(str(folder)), library=app.library, data=app.data)
            await app.pool.run(self._check_library_space)
            report = ImportReport(id=secrets.token_hex(8), source=str(source), move=move)
            await asyncio.to_thread(self._save, report)
            self.current = report
            self._cancel = threading.Event()
            self._task = app.spawn(self._run(report, source), f"import-{report.id}")
            log.info("import %s: %s %s into the library", report.id, "moving" if move else "copying", source)
            return report

    def _check_library_space(self) -> None:
        """Refuse to start on a library disk below [index] min_free_mib (daemon.system.diskspace):
        a copy that fills the disk would fail file after file."""
        need = self.app.config["index.min_free_mib"] * MIB
        free = free_bytes(self.app.library)
        if free < need:
            raise ImportRefused(f"the library disk is full: {free // MIB} MiB free at {self.app.library}, "
                                f"Shoebox keeps {need // MIB} MiB free ([index] min_free_mib)")

    async def run(self, folder: Path | str, *, move: bool = False) -> ImportReport:
        """Start an import and wait for its report (the CLI and the MQTT command)."""
        report = await self.start(folder, move=move)
        assert self._task is not None
        await asyncio.shield(self._task)
        return report

    def get(self, report_id: str) -> ImportReport | None:
        if self.current is not None and self.current.id == report_id:
            return self.current
        if not REPORT_ID.match(report_id):
            return None
        try:
            data = json.loads((self.reports_dir / f"{report_id}.json").read_text())
        except (OSError, ValueError):
            return None
        return self._stale(ImportReport.from_dict(data))

    def recent(self, limit: int = 50) -> list[ImportReport]:
        """The newest reports first."""
        try:
            paths = sorted(self.reports_dir.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        except OSError:
            return []
        out = []
        for path in paths[:limit]:
            report = self.get(path.stem)
            if report is not None:
                out.append(report)
        return out

    def _stale(self, report: ImportReport) -> ImportReport:
        running_here = self.current is not None and self.current.id == report.id
        if report.state == "running" and not running_here:
            report.state = "interrupted"
            report.error = report.error or "Shoebox stopped before this import finished; run it again to finish it"
        return report

    def stop(self) -> None:
        """Make the running import's copies stop at the next chunk (shutdown)."""
        self._cancel.set()

    # -- the run -----------------------------------------------------------------------------------------

    async def _run(self, report: ImportReport, source: Path) -> ImportReport:
        app = self.app
        assert app.pool is not None
        started = time.monotonic()
        try:
            plan = await app.pool.run(plan_import, source, self._cancel)
            report.files, report.bytes = plan.files, plan.bytes
            report.ignored, report.ignored_count = plan.ignored, plan.ignored_count
            for path, why in plan.errors:
                report.failed.append({"source": path, "reason": f"cannot read: {why}"})
            for orphan in plan.orphans:
                report.skipped.append({"source": str(orphan.path), "reason": "a sidecar without its photo or video"})
                report.done += 1
            seen: dict[str, str] = {}
            for group in plan.groups:
                await self._import_group(report, group, seen)
            if report.folders:
                await app.scan(only=[os.fsencode(f) for f in report.folders])
            report.state = "finished"
        except asyncio.CancelledError:
            self._cancel.set()
            report.state, report.error = "interrupted", "Shoebox stopped during the import"
            raise
        except Cancelled:
            report.state, report.error = "interrupted", "Shoebox stopped during the import"
        except Exception as exc:
            log.exception("import %s failed", report.id)
            report.state, report.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            report.finished_at = utcnow()
            try:
                await asyncio.to_thread(self._save, report)
            except OSError as exc:
                log.error("import %s: cannot store the report: %s", report.id, exc)
            await self._announce(report, time.monotonic() - started)
        return report

    async def _announce(self, report: ImportReport, seconds: float) -> None:
        """import.finished, staged in a transaction of its own once the report is saved and the new
        folders are scanned (their file rows committed before): in the outbox before run_import returns."""
        counts = report.counts()
        log.info("import %s %s: %s", report.id, report.state, ", ".join(f"{v} {k}" for k, v in counts.items()))
        data = {"id": report.id, "source": report.source, "move": report.move, "state": report.state,
                "error": report.error, **counts, "seconds": round(seconds, 1)}
        assert self.app.db is not None
        try:
            await self.app.db.write_staged(lambda conn, stage: stage(ev.IMPORT_FINISHED, data))
        except Exception as exc:  # a full disk: the report on disk still says what happened
            log.error("import %s: cannot store its import.finished event: %s", report.id, exc)

    def _taken(self, path: Path, sidecars: list[Path], mtime: float) -> tuple[dt.datetime, str]:
        cfg = self.app.config
        pool = self.app.pool
        assert pool is not None
        tool = pool.resource("exiftool", lambda: ExifTool(cfg["index.exiftool"], timeout=cfg["index.exiftool_timeout"]))
        return taken_time(path, tool, sidecars, mtime)

    async def _duplicate_of(self, sha1: str, seen: dict[str, str]) -> str | None:
        if sha1 in seen:
            return seen[sha1]
        db = self.app.db
        assert db is not None
        path = await db.scalar("SELECT path_text FROM files WHERE sha1 = ? AND offline = 0 ORDER BY id LIMIT 1", (sha1,))
        return f"library: {path}" if path else None

    async def _import_group(self, report: ImportReport, group: Group, seen: dict[str, str]) -> None:
        app = self.app
        pool = app.pool
        assert pool is not None
        hashed: dict[Path, tuple[str, int]] = {}
        for media in group.media:
            try:
                sha1, size = await pool.run(sha1_of, media.path, self._cancel)
            except OSError as exc:
                report.failed.append({"source": str(media.path), "reason": f"cannot read: {exc.strerror or exc}"})
                self._advance(report, media.size)
                continue
            duplicate = await self._duplicate_of(sha1, seen)
            if duplicate is not None:
                report.skipped.append({"source": str(media.path), "reason": "duplicate", "duplicate_of": duplicate,
                                       "sha1": sha1})
                self._advance(report, media.size)
                continue
            seen[sha1] = f"import: {media.path}"
            hashed[media.path] = (sha1, size)
        todo = [m for m in group.media if m.path in hashed]
        if not todo:
            for sidecar in group.sidecars:
                report.skipped.append({"source": str(sidecar.path),
                                       "reason": "its photo was skipped (a duplicate, or unreadable)"})
                self._advance(report, sidecar.size)
            return

        primary = group.primary(todo)
        when, _ = await pool.run(self._taken, primary.path, [s.path for s in group.sidecars], primary.mtime)
        folder_rel = dated_folder(self.layout, when)
        folder = app.library / folder_rel
        base = await pool.run(self._free_base, folder, dated_base(when, hashed[primary.path][0]),
                              [m.path.suffix.lower() for m in todo])
        new_names: dict[Path, str] = {}
        for media in todo:
            sha1, size = hashed[media.path]
            target = await self._copy(report, media.path, folder, base + media.path.suffix.lower(), sha1, size)
            if target is not None:
                new_names[media.path] = target.name
                self._note_folder(report, folder_rel)
        for sidecar in group.sidecars:
            name = new_sidecar_name(sidecar.path, group, new_names, base)
            if name is None:
                report.skipped.append({"source": str(sidecar.path), "reason": "its photo was not imported"})
                self._advance(report, sidecar.size)
                continue
            try:
                sha1, size = await pool.run(sha1_of, sidecar.path, self._cancel)
            except OSError as exc:
                report.failed.append({"source": str(sidecar.path), "reason": f"cannot read: {exc.strerror or exc}"})
                self._advance(report, sidecar.size)
                continue
            await self._copy(report, sidecar.path, folder, name, sha1, size)

    @staticmethod
    def _free_base(folder: Path, base: str, exts: list[str]) -> str:
        """`base`, or `base-1`...: the first under which none of the group's files exists."""
        candidate, n = base, 0
        while any(os.path.lexists(folder / (candidate + ext)) for ext in exts):
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    async def _copy(self, report: ImportReport, source: Path, folder: Path, name: str, sha1: str,
                    size: int) -> Path | None:
        """Copy (and with move, verify and delete the source); record the outcome."""
        pool = self.app.pool
        assert pool is not None
        try:
            target = await pool.run(copy_verified, source, folder, name, sha1=sha1, size=size, reread=report.move,
                                    cancel=self._cancel)
        except CopyFailed as exc:
            report.failed.append({"source": str(source), "reason": str(exc)})
            self._advance(report, size)
            return None
        entry = {"source": str(source), "target": str(target.relative_to(self.app.library)), "sha1": sha1, "size": size}
        if report.move:
            try:
                await pool.run(os.unlink, source)
                report.moved.append(entry)
            except OSError as exc:  # the copy is good; the source stays (reported, nothing lost)
                entry["reason"] = f"copied, but the source could not be deleted: {exc.strerror or exc}"
                report.copied.append(entry)
        else:
            report.copied.append(entry)
        self._advance(report, size)
        return target

    @staticmethod
    def _advance(report: ImportReport, size: int) -> None:
        report.done += 1
        report.bytes_done += size

    @staticmethod
    def _note_folder(report: ImportReport, folder_rel: str) -> None:
        if folder_rel not in report.folders:
            report.folders.append(folder_rel)

    # -- reports on disk ----------------------------------------------------------------------------------

    def _save(self, report: ImportReport) -> None:
        self.reports_dir.mkdir(parents=True, exist_ok=True)
        path = self.reports_dir / f"{report.id}.json"
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_text(json.dumps(report.as_dict(), indent=1))
        os.replace(temp, path)
        old = sorted(self.reports_dir.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for stale in old[:-REPORTS_KEPT]:
            try:
                stale.unlink()
            except OSError:
                pass


__all__ = ["ImportBusy", "ImportRefused", "ImportReport", "ImportRuns"]

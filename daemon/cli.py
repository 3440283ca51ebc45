"""The `shoebox` command: serve, index, import, status, export, config.

These names and flags are a contract that other tools, the systemd unit and the README rely on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from daemon import __version__
from daemon.config import Config, ConfigError, add_setting_flags, flags_from_args, load_config
from daemon.events.cli import add_parser as add_webhooks_parser, cmd_webhooks

log = logging.getLogger("shoebox")

# Exit codes (README: The `shoebox` command). 1 library missing, 2 bad setting, 3 data folder
# busy, 4 database unusable are set where they happen.
EXIT_DISK_FULL = 5  # the data (or thumbnail) disk has less than [index] min_free_mib free
EXIT_DATA_UNUSABLE = 6  # the data folder is not a folder or cannot be written
EXIT_BACKUP_REFUSED = 7  # backup: no destination or it failed; restore: damaged, newer, or not empty

# Short flags every command that touches a library accepts (they set the same settings as the
# long --index-workers style flags).
SHORT_FLAGS = {
    "library": lambda a: a.library,
    "data": lambda a: a.data,
    "index.workers": lambda a: getattr(a, "workers", None),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shoebox", description="A private photo library for your home.")
    parser.add_argument("--version", action="version", version=f"shoebox {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, *, workers: bool = False, settings: bool = False) -> None:
        p.add_argument("--config", type=Path, help="configuration file (default: config/shoebox.toml, /etc/shoebox/shoebox.toml)")
        p.add_argument("--library", help="the photo folder [SHOEBOX_LIBRARY]")
        p.add_argument("--data", help="where the database and thumbnails live [SHOEBOX_DATA]")
        if workers:
            p.add_argument("--workers", help="worker threads (default: one per core) [SHOEBOX_INDEX_WORKERS]")
        if settings:
            add_setting_flags(p, skip=("library", "data", "index.workers"))

    p = sub.add_parser("serve", help="run the daemon: web server, API, watcher and background indexing")
    common(p, workers=True, settings=True)

    p = sub.add_parser("index", help="index the library once, then exit (with a progress bar)")
    common(p, workers=True, settings=True)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--stats-json", type=Path, help="write stage timings and counts to this file (benchmarks)")
    p.add_argument("--retry-errors", action="store_true",
                   help="try every file recorded as an error again (and every file waiting for its drive)")
    pause = p.add_mutually_exclusive_group()
    pause.add_argument("--pause", action="store_true",
                       help="pause the indexing of the running `shoebox serve` (as POST /api/v1/index/stop), then exit")
    pause.add_argument("--resume", action="store_true",
                       help="resume the indexing of the running `shoebox serve`, then exit")

    p = sub.add_parser("import", help="copy (or move) a folder's photos into the library's dated folders, "
                       "skip duplicates, index them and print a report")
    common(p, workers=True, settings=True)
    p.add_argument("folder", type=Path, help="the folder to import (outside the library and the data folder)")
    p.add_argument("--move", action="store_true",
                   help="delete each source file once its copy is verified (size and SHA-1); default: copy")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")

    p = sub.add_parser("status", help="counts, queue, errors and offline files")
    common(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = sub.add_parser("export", help="write every photo with all its fields as one JSON array")
    common(p)
    p.add_argument("--json", dest="json_file", required=True, metavar="FILE", help="output file ('-' for stdout)")

    from daemon.auth.commands import add_parser as add_users_parser
    add_users_parser(sub, common)

    p = sub.add_parser("tag", help="tag photos (labels, faces, people) that need it, then exit")
    common(p, workers=True, settings=True)
    p.add_argument("--rerun", action="store_true", help="tag the selected photos again, even if already tagged")
    p.add_argument("query", nargs="?", default="", help="photos to (re)tag, in the search language (default: all)")

    p = sub.add_parser("people", help="list and shape people: name, rename, merge, split, reject, assign, hide")
    people = p.add_subparsers(dest="people_command", required=True, metavar="ACTION")

    def action(name: str, help: str, *positionals: str) -> argparse.ArgumentParser:
        a = people.add_parser(name, help=help)
        for positional in positionals:
            a.add_argument(positional, nargs="+" if positional == "faces" else None)
        common(a)  # on each action, so `shoebox people list --data DIR` works
        return a

    action("list", "named people and unnamed clusters of faces")
    action("name", "name a cluster (creates the person, or joins one of that name)", "cluster", "name")
    action("rename", "rename a person", "person", "name")
    action("merge", "merge the first person (or cluster) into the second", "source", "target").add_argument(
        "--clusters", action="store_true", help="the ids are clusters, not people")
    action("split", "move faces out of a cluster into a new one", "cluster", "faces")
    action("reject", "this face is not that person: remove it for good", "face")
    action("assign", "this face is that person", "face", "person")
    a = action("hide", "hide a person, cluster or face", "id")
    a.add_argument("--kind", choices=("person", "cluster", "face"), default="person")
    a.add_argument("--show", action="store_true", help="show it again")

    add_webhooks_parser(sub, common)

    p = sub.add_parser("doctor", help="check disks, permissions, clock, models, tools, certificate, database and "
                       "watchdog; print what to fix (exit 0 ok, 1 warnings, 2 problems)")
    common(p, settings=True)  # the same settings as serve: check what serve would use
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = sub.add_parser("backup", help="copy the database (consistently, while serving), secrets, keys and the "
                       "config file into a new timestamped folder in DEST (see README: Backups)")
    common(p)
    p.add_argument("dest", nargs="?", help="the folder to put the backup in, or s3://BUCKET/FOLDER "
                   "(default: [backup] destination)")
    p.add_argument("--thumbnails", action="store_true", help="include the thumbnails (normally remade)")
    p.add_argument("--originals", action="store_true", help="include a copy of every library file, as it is")
    p.add_argument("--keep", type=int, metavar="N", help="then remove all but the N newest backups of this library in DEST")

    p = sub.add_parser("restore", help="verify a backup and restore it into a stopped, empty data folder")
    common(p)
    p.add_argument("src", help="the backup folder (shoebox-backup-... or data/backups/pre-migration-...), "
                   "or s3://BUCKET/FOLDER/shoebox-backup-...")
    p.add_argument("--replace", action="store_true",
                   help="the data folder holds a library index: move it aside (to data/backups/) and restore")
    p.add_argument("--originals", action="store_true",
                   help="also copy the backup's originals into the library (files already there are left alone)")
    p.add_argument("--check", action="store_true", help="only verify the backup (checksums, version) and exit")

    p = sub.add_parser("config", help="print the effective settings and where each came from")
    common(p, workers=True, settings=True)
    return parser


def load(args: argparse.Namespace) -> Config:
    return load_config(file=args.config, flags=flags_from_args(args, SHORT_FLAGS))


def check_webhook_targets(config: Config) -> None:
    """[webhooks] allow_private_targets is a list in a string: a bad entry is a configuration
    error now (exit 2), not a webhook manager that fails later in the background."""
    from daemon.events.targets import TargetPolicy
    try:
        TargetPolicy.parse(config["webhooks.allow_private_targets"])
    except ValueError as exc:
        raise ConfigError(f"invalid value for webhooks.allow_private_targets: {exc}") from None


def check_server_tls(config: Config) -> None:
    """[server] trusted_proxies, tls_cert and tls_key: a bad list or a certificate that cannot be
    loaded is a configuration error now (exit 2), not a server that fails to start later."""
    from daemon.api.proxies import parse_trusted_proxies
    from daemon.system.tls import check_user_certificate
    parse_trusted_proxies(config["server.trusted_proxies"])
    if config["server.https"]:
        check_user_certificate(config["server.tls_cert"], config["server.tls_key"])


def check_backup(config: Config) -> None:
    """A backup schedule without a destination is a configuration error now (exit 2)."""
    if config["backup.schedule"] != "off" and not str(config["backup.destination"]).strip():
        raise ConfigError(f"backup.schedule is {config['backup.schedule']!r} but backup.destination is empty: "
                          "name the folder backups go to (e.g. a folder on a USB disk)")


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    # tokens never reach the log: ?t= and share links, Authorization headers, refresh tokens in
    # exception texts are masked by the handler, whichever logger the record came from
    from daemon.redaction import install_log_redaction
    install_log_redaction()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load(args)
        check_webhook_targets(config)
        if args.command == "serve":  # other commands never read the certificate (nor may their user)
            check_server_tls(config)
        check_backup(config)
    except ConfigError as exc:
        print(f"shoebox: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(config["log.level"])
    if args.command == "users":
        from daemon.auth.commands import run as run_users
        return run_users(config.data, args)
    handler = {"serve": cmd_serve, "index": cmd_index, "status": cmd_status, "export": cmd_export,
               "config": cmd_config, "import": cmd_import, "tag": cmd_tag, "people": cmd_people, "webhooks": cmd_webhooks,
               "doctor": cmd_doctor,
               "backup": cmd_backup, "restore": cmd_restore}[args.command]
    try:
        return handler(config, args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from daemon.system.datalock import DataDirBusy
        from daemon.store.db import StoreError
        from daemon.system.diskspace import DataDirUnusable, StorageFull, is_no_space
        if isinstance(exc, DataDirBusy):
            print(f"shoebox: {exc}", file=sys.stderr)
            return 3
        if isinstance(exc, StorageFull) or is_no_space(exc):
            print(f"shoebox: {exc if isinstance(exc, StorageFull) else f'a disk is full: {exc}'}; "
                  "free some space and start again", file=sys.stderr)
            return EXIT_DISK_FULL
        if isinstance(exc, DataDirUnusable):
            print(f"shoebox: {exc}", file=sys.stderr)
            return EXIT_DATA_UNUSABLE
        if isinstance(exc, StoreError):
            print(f"shoebox: cannot open the library index: {exc}", file=sys.stderr)
            return 4
        raise


# -- commands ---------------------------------------------------------------------------------------


def cmd_config(config: Config, args: argparse.Namespace) -> int:
    print(f"# config file: {config.file or '(none)'}")
    for name, value, origin in config.describe():
        print(f"{name} = {value}    # {origin}")
    return 0


def cmd_doctor(config: Config, args: argparse.Namespace) -> int:
    """Read-only checks, one line each (daemon.system.doctor); safe beside a running daemon."""
    from daemon.system.doctor import as_json, diagnose, exit_code

    findings = diagnose(config)
    if args.json:
        print(json.dumps(as_json(findings), indent=2))
    else:
        for finding in findings:
            print(finding.line())
    return exit_code(findings)


def cmd_serve(config: Config, args: argparse.Namespace) -> int:
    asyncio.run(serve(config))
    return 0


async def serve(config: Config) -> None:
    from daemon.api.server import start_server
    from daemon.app import App
    from daemon.system.notify import Notifier, status_line

    notifier = Notifier.from_environ()
    app = App(config, notifier=notifier)
    # fed from the start on: migrations and the first places build can take minutes on a Pi
    watchdog = asyncio.create_task(notifier.feed_watchdog(), name="watchdog")
    try:
        await app.start()
    except BaseException:
        watchdog.cancel()
        raise
    servers = await start_server(app, config["server.host"], config["server.port"], config["server.thumbnail_port"])
    log.info("serving on %s://%s:%d/", servers.scheme, config["server.host"], config["server.port"])
    if servers.thumbs.port:
        log.info("thumbnails also on %s://%s:%d/api/v1/t/", servers.scheme, config["server.host"], servers.thumbs.port)
    if servers.plain_port:
        log.info("plain HTTP on port %d: /api/v1/health, /ca.crt, and a redirect to HTTPS", servers.plain_port)
    if app.auth is not None and not await app.auth.admin_exists():
        log.warning("no admin account yet: create one with `shoebox users add NAME --role admin` "
                    "(or once, POST /api/v1/setup); until then only /api/v1/health answers")
    # a stop asked for while zeroconf is still probing is kept, not fatal (the default SIGTERM action)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if app.events is not None:  # zeroconf: only once the server answers (probing takes seconds)
        try:  # READY means "open it now": wait for the announcement, but never for long
            await asyncio.wait_for(app.events.start_announcer(config["server.port"], servers.thumbs.port), 15)
        except asyncio.TimeoutError:
            log.warning("zeroconf: not announced after 15 s; serving anyway")
    app.start_background()
    notifier.ready(status_line(await _systemd_status(app)))
    if notifier.enabled:
        app.spawn(_report_status(app, notifier), "systemd-status")
    try:
        await stop.wait()
    finally:
        notifier.stopping()
        log.info("stopping")
        await servers.cleanup()
        await app.stop()
        watchdog.cancel()
        await asyncio.gather(watchdog, return_exceptions=True)
        notifier.close()


async def _systemd_status(app: Any) -> dict[str, Any]:
    """What the status line needs, and no more: the photo count and the queue (two small queries;
    the full status counts a big library for hundreds of ms)."""
    photos = await app.db.scalar("SELECT count(*) FROM photos")
    return {"photos": {"total": photos or 0}, "queue": await app.queue.pending(), "paused": app.queue.paused}


async def _report_status(app: Any, notifier: Any, every: float = 5.0) -> None:
    """`systemctl status shoebox` shows what the daemon does, refreshed every few seconds when
    something was written since (an idle library costs no query at all)."""
    from daemon.system.notify import status_line

    last = ""
    seen: tuple[int, bool] | None = None  # (database generation, paused) the last line was made at
    while True:
        await asyncio.sleep(every)
        generation = (app.db.generation, app.queue.paused)
        if generation == seen:
            continue
        try:
            line = status_line(await _systemd_status(app))
        except Exception as exc:  # a status that cannot be read now is no reason to stop reporting
            log.debug("status for systemd: %s", exc)
            continue
        seen = generation
        if line != last:
            notifier.status(line)
            last = line


def cmd_index(config: Config, args: argparse.Namespace) -> int:
    if args.pause or args.resume:
        return _pause_serve(config, pause=args.pause)
    return asyncio.run(index(config, quiet=args.quiet, stats_json=args.stats_json, retry_errors=args.retry_errors))


async def index(config: Config, *, quiet: bool, stats_json: Path | None, retry_errors: bool = False) -> int:
    from tqdm import tqdm

    from daemon.app import App

    app = App(config)
    await app.start()
    started = time.perf_counter()
    bar = None
    counts = {"indexed": 0, "errors": 0, "duplicates": 0, "moved": 0}

    def progress(outcome: Any) -> None:
        key = ("errors" if outcome.error else "duplicates" if outcome.duplicate
               else "moved" if outcome.moved else "indexed")
        counts[key] += 1
        if bar is not None:
            bar.update(1)

    stop_progress = app.stored.subscribe(progress)
    try:
        assert app.queue is not None and app.scanner is not None and app.db is not None
        if retry_errors:
            retried = await app.scanner.retry_errors()
            print(f"retrying {retried} files recorded as errors or waiting", file=sys.stderr)
        report = await app.scan()
        pending = sum((await app.queue.pending()).values())
        if not quiet and sys.stderr.isatty() or not quiet and pending:
            bar = tqdm(total=pending, unit="file", desc="indexing", dynamic_ncols=True, file=sys.stderr,
                       mininterval=0.5, smoothing=0.1)
        full = await _wait_idle_or_full(app)
        status = await app.status()
        # jobs that wait for a library that went away during the run (the next run does them)
        waits = await app.queue.waiting()
        left = waits.pop("library", 0)
        unreadable_now = sum(n for why, n in waits.items() if why != "storage")
        gone_reason = await app.db.scalar(
            "SELECT error FROM jobs WHERE wait_reason = 'library' ORDER BY updated_at DESC LIMIT 1") if left else None
    finally:
        stop_progress()
        if bar is not None:
            bar.close()
        elapsed = time.perf_counter() - started
        times = app.indexer.times if app.indexer else None
        await app.stop()
    if report.status == "skipped":
        print(f"shoebox: scan skipped: {report.reason}", file=sys.stderr)
    if full is not None:
        waiting = status["queue"].get("index", 0)
        print(f"shoebox: indexing stopped: the {full['volume']} disk is full ({full['free_mib']} MiB free at "
              f"{full['path']}; Shoebox keeps {full['min_free_mib']} MiB free: [index] min_free_mib); {waiting} "
              f"files wait for the next run once space is freed", file=sys.stderr)
        return EXIT_DISK_FULL
    done = sum(counts.values())
    print(f"indexed {counts['indexed']} files in {elapsed:.1f} s ({done / elapsed if elapsed else 0:.1f} files/s); "
          f"{counts['errors']} errors, {counts['duplicates']} duplicates, {counts['moved']} moved; "
          f"{report.offline} went offline, {report.online} came back; "
          f"library: {status['photos']['total']} photos", file=sys.stderr)
    if stats_json is not None:
        stats_json.write_text(json.dumps({
            "elapsed_s": elapsed, "files": done, "counts": counts,
            "stages_s": times.totals if times else {}, "scan": report.__dict__, "workers": config.workers,
        }, indent=2, default=str))
    if unreadable_now:
        print(f"shoebox: {unreadable_now} files could not be read for now (see `shoebox status`); the next run "
              "tries them again", file=sys.stderr)
    if left:
        if report.status != "skipped":
            print(f"shoebox: the library went away during the run ({gone_reason}); {left} files wait for it and "
                  "are indexed by the next run (or by `shoebox serve`) once it is back", file=sys.stderr)
        else:
            print(f"shoebox: {left} files wait for the library to come back", file=sys.stderr)
        return 1
    return 1 if report.status == "skipped" else 0


async def _wait_idle_or_full(app: Any) -> dict[str, Any] | None:
    """Run the queue to the end, or until a full disk pauses it (a one-pass `shoebox index` does not
    wait for space like `serve` does): then let the jobs in flight finish and return the state."""
    assert app.queue is not None and app.storage is not None
    idle = asyncio.ensure_future(app.queue.wait_idle())
    try:
        while not idle.done():
            await asyncio.wait({idle}, timeout=0.5)
            if app.storage.paused and not app.queue.in_flight and not idle.done():
                return dict(app.storage.full)
        idle.result()
        return None
    finally:
        if not idle.done():
            idle.cancel()
            await asyncio.gather(idle, return_exceptions=True)


def cmd_import(config: Config, args: argparse.Namespace) -> int:
    return asyncio.run(import_folder(config, args.folder, move=args.move, as_json=args.json))


async def import_folder(config: Config, folder: Path, *, move: bool, as_json: bool) -> int:
    """`shoebox import`: the same import as POST /api/v1/import, then index what it brought in.
    Exit 0 when every file was imported or skipped as a duplicate, 1 if some failed, 2 if the
    folder cannot be imported."""
    from daemon.app import App
    from daemon.library.import_runs import ImportBusy
    from daemon.library.importer import ImportRefused

    app = App(config)
    await app.start()
    try:
        try:
            report = await app.run_import(folder.expanduser().absolute(), move=move)
        except (ImportRefused, ImportBusy) as exc:
            print(f"shoebox: {exc}", file=sys.stderr)
            return 2
        assert app.queue is not None
        await app.queue.wait_idle()  # the imported files are photos before the command returns
    finally:
        await app.stop()
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for entry in report.copied:
            print(f"copied   {entry['source']} -> {entry['target']}")
        for entry in report.moved:
            print(f"moved    {entry['source']} -> {entry['target']}")
        for entry in report.skipped:
            why = entry["reason"] + (f" of {entry['duplicate_of']}" if entry.get("duplicate_of") else "")
            print(f"skipped  {entry['source']}: {why}")
        for entry in report.failed:
            print(f"failed   {entry['source']}: {entry['reason']}")
    counts = report.counts()
    print(f"import {report.id} {report.state}: {counts['copied']} copied, {counts['moved']} moved, "
          f"{counts['skipped']} skipped, {counts['failed']} failed, {counts['ignored']} not photos or videos"
          + (f"; {report.error}" if report.error else ""), file=sys.stderr)
    return 0 if report.state == "finished" and not report.failed else 1


def cmd_tag(config: Config, args: argparse.Namespace) -> int:
    return asyncio.run(tag(config, query=args.query, rerun=args.rerun))


async def tag(config: Config, *, query: str, rerun: bool) -> int:
    """Queue tag jobs for the selected photos (all of them without a query) and run them."""
    from daemon.app import App
    from daemon.jobs.queue import PRIORITY_TAG, enqueue
    from daemon.search import SearchError
    from daemon.search.selection import select_ids

    app = App(config)
    await app.start()
    try:
        if app.tagger is None:
            print("shoebox: tagging is turned off ([tagging] enabled = false)", file=sys.stderr)
            return 1
        assert app.db is not None and app.queue is not None
        try:
            ids = await app.db.read(lambda c: select_ids(c, query))
        except SearchError as exc:
            print(f"shoebox: {exc}", file=sys.stderr)
            return 2

        def queue(conn: sqlite3.Connection) -> int:
            n = 0
            for photo_id in ids:
                if rerun:
                    conn.execute("UPDATE photos SET tag_models = NULL WHERE id = ?", (photo_id,))
                enqueue(conn, "tag", priority=PRIORITY_TAG, photo_id=photo_id)
                n += 1
            return n

        queued = await app.db.write(queue) if (rerun or query) else await app.tagger.requeue_backlog()
        app.queue.wake()
        started = time.perf_counter()
        await app.queue.wait_idle()
        elapsed = time.perf_counter() - started
        status = app.tagger.status()
    finally:
        await app.stop()
    print(f"tagged {queued} photos in {elapsed:.1f} s", file=sys.stderr)
    for task, model in status["models"].items():
        if model["state"] in ("missing", "failed"):
            print(f"  {task}: {model['state']}: {model['reason']}", file=sys.stderr)
    return 0


def cmd_people(config: Config, args: argparse.Namespace) -> int:
    """People commands open the store directly (the daemon may be running: WAL allows it)."""
    from daemon.events import bus as ev
    from daemon.events.outbox import stage_beside
    from daemon.store import people as p
    from daemon.store.db import in_transaction, open_sync

    path = config.data / "shoebox.db"
    if not path.exists():
        raise SystemExit(f"shoebox: no library index at {path} yet")
    conn = open_sync(path)
    action = args.people_command
    ids = ev.UlidFactory()

    def stage(c: sqlite3.Connection, type: str, data: dict[str, Any]) -> None:
        """The same events as the API raises, in this transaction (a running daemon delivers them)."""
        stage_beside(c, ids.new(), type, data, config["events.outbox_max"])

    def name_of(c: sqlite3.Connection, uid: str) -> str | None:
        row = c.execute("SELECT name FROM people WHERE uid = ?", (uid,)).fetchone()
        return None if row is None else row[0]

    def change(c: sqlite3.Connection) -> str | None:
        if action == "name":
            result = p.name_cluster(c, args.cluster, args.name)
            stage(c, ev.PERSON_NAMED, {"person": result["name"], "person_id": result["person"],
                                       "cluster": args.cluster, "created": result["created"]})
            return f"{'created' if result['created'] else 'joined'} person {result['person']} {result['name']}"
        if action == "rename":
            old = name_of(c, args.person)
            p.rename_person(c, args.person, args.name)
            if name_of(c, args.person) != old:
                stage(c, ev.PERSON_NAMED, {"person": name_of(c, args.person), "person_id": args.person,
                                           "old_name": old, "created": False})
        elif action == "merge" and not args.clusters:
            merged_name = name_of(c, args.source)
            p.merge_people(c, args.source, args.target)
            stage(c, ev.PERSON_MERGED, {"person": name_of(c, args.target), "person_id": args.target,
                                        "merged": args.source, "merged_name": merged_name})
        elif action == "merge":
            p.merge_clusters(c, args.source, args.target)
        elif action == "split":
            return f"new cluster {p.split_cluster(c, args.cluster, args.faces)}"
        elif action == "reject":
            p.reject_face(c, args.face)
        elif action == "assign":
            p.assign_face(c, args.face, args.person)
        elif action == "hide":
            p.set_hidden(c, args.kind, args.id, not args.show)
        return None

    try:
        if action == "list":
            # the API's counts (visible faces only), hidden people and clusters included and marked
            rows = [("person", r) for r in p.people_list(conn, hidden=True)]
            rows += [("cluster", {**r, "name": None}) for r in p.clusters_list(conn, hidden=True)]
            for kind, row in rows:
                name = row["name"] or "(unnamed)"
                hidden = " hidden" if row["hidden"] else ""
                print(f"{kind:8} {row['id']}  {name:30} {row['faces']:5} faces {row['photos']:5} photos{hidden}")
            return 0
        message = in_transaction(conn, change)
    except p.PeopleError as exc:
        print(f"shoebox: {exc}", file=sys.stderr)
        return 2
    finally:
        conn.close()
    if message:
        print(message)
    return 0


def _open_readonly(config: Config) -> sqlite3.Connection:
    path = config.data / "shoebox.db"
    if not path.exists():
        raise SystemExit(f"shoebox: no library index at {path} yet; run `shoebox index` or `shoebox serve` first")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def _pause_serve(config: Config, *, pause: bool) -> int:
    """`shoebox index --pause/--resume`: change the one pause state the running daemon's job queue
    follows (kept in its database; it notices within a few seconds). Without a running daemon there
    is nothing to pause: every start indexes."""
    from daemon.jobs.queue import clear_paused, set_paused
    from daemon.store.db import in_transaction, open_sync

    if not _daemon_running(config.data):
        print(f"no shoebox is running on {config.data}: nothing to {'pause' if pause else 'resume'} "
              "(every start indexes)", file=sys.stderr)
        return 1
    conn = open_sync(config.data / "shoebox.db")
    try:
        if pause:
            since, newly = in_transaction(conn, set_paused)
            print(f"indexing paused{'' if newly else ' already'} (since {since}); `shoebox index --resume` resumes it")
        else:
            was = in_transaction(conn, clear_paused)
            print("indexing resumed" if was else "indexing was not paused")
    finally:
        conn.close()
    return 0


def _daemon_running(data: Path) -> bool:
    """Whether a Shoebox process holds the data folder's lock (daemon.system.datalock)."""
    from daemon.system import datalock

    return datalock.held(data)


def cmd_status(config: Config, args: argparse.Namespace) -> int:
    from daemon.store.status import _status

    from daemon.jobs.queue import paused_since

    conn = _open_readonly(config)
    try:
        status = _status(conn, error_limit=20)
        # the pause of a running daemon (API, MQTT cmd/index or `shoebox index --pause`)
        status["paused_at"] = paused_since(conn) if _daemon_running(config.data) else None
    finally:
        conn.close()
    status["storage"] = _storage_status(config)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    p, f, q = status["photos"], status["files"], status["queue"]
    print(f"library   {config.library}")
    st = status["storage"]
    if st["state"] == "full":
        where = f"the {st['volume']} disk has {st['free_mib']} MiB free at {st['path']}"
        if st["running"]:
            print(f"storage   FULL: indexing paused since {st['since']}: {where}; it resumes by itself once "
                  f"space is freed")
        else:
            print(f"storage   FULL: {where} ({st['min_free_mib']} MiB needed: [index] min_free_mib); "
                  f"indexing cannot start until space is freed")
    else:
        print(f"storage   ok ({st['free_mib']} MiB free on the data disk)")
    print(f"photos    {p['total']} ({p['videos']} videos, {p['live']} live, {p['raw']} raw; "
          f"{p['offline']} offline, {p['review']} to review)")
    print(f"files     {f['indexed']} indexed, {f['new']} waiting, {f['errors']} errors, "
          f"{f['duplicates']} duplicates, {f['offline']} offline, {f['sidecars']} sidecars")
    print("queue     " + (", ".join(f"{k} {v}" for k, v in q.items() if k != "total") or "empty"))
    if status["paused_at"]:
        print(f"indexing  PAUSED since {status['paused_at']} (`shoebox index --resume` resumes it)")
    scan = status["last_scan"]
    if scan:
        line = f"last scan {scan['started_at']} {scan['status']}"
        if scan["reason"]:
            line += f": {scan['reason']}"
        print(line)
    for why, w in status.get("waiting", {}).items():
        what = {"library": "the library to come back", "gone": "their file to come back",
                "file": "a read to work again", "storage": "disk space"}.get(why, why)
        print(f"waiting   {w['files']} files wait for {what} (retried by {w['until']} at the latest, or as soon "
              f"as a scan sees them): {w['reason']}")
    if status["errors"]:
        print("errors:")
        for e in status["errors"]:
            print(f"  {e['path']}: {e['error']}")
    if status["offline_files"]:
        print("offline files:")
        for path in status["offline_files"]:
            print(f"  {path}")
    return 0


def _storage_status(config: Config) -> dict[str, Any]:
    """The disk-space state for `shoebox status`: the running daemon's own (it writes it to
    <data>/shoebox.state, even on a full disk), else what a start would find now."""
    import fcntl

    from daemon.system.diskspace import MIB, DiskSpace, Volume, free_bytes, read_state_file

    data = config.data
    running = False
    try:
        fd = os.open(data / "shoebox.lock", os.O_RDONLY)
    except OSError:
        fd = None
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            running = True
        finally:
            os.close(fd)
    free_mib = round(free_bytes(data) / MIB, 1)
    min_free_mib = config["index.min_free_mib"]
    state = read_state_file(data / "shoebox.state") if running else None
    if state is not None and state.get("storage"):
        return {"state": "full", "indexing_paused": True, "running": True, **state["storage"]}
    if not running:
        short = DiskSpace([Volume("data", data), Volume("thumbnails", data / "thumbs")], min_free_mib).short_volume()
        if short is not None:
            vol, free = short
            return {"state": "full", "indexing_paused": True, "running": False, "volume": vol.name,
                    "path": str(vol.path), "free_mib": round(free / MIB, 1), "min_free_mib": min_free_mib}
    return {"state": "ok", "indexing_paused": False, "running": running, "free_mib": free_mib,
            "min_free_mib": min_free_mib}


def cmd_export(config: Config, args: argparse.Namespace) -> int:
    from daemon.store.export import export_json

    conn = _open_readonly(config)
    try:
        count = export_json(conn, args.json_file)
    finally:
        conn.close()
    if args.json_file != "-":
        print(f"exported {count} photos to {args.json_file}", file=sys.stderr)
    return 0


def cmd_backup(config: Config, args: argparse.Namespace) -> int:
    """`shoebox backup [DEST]`: runs beside `shoebox serve` (its own read snapshot of the database)."""
    from daemon.backup.make import BackupOptions, make_backup, prune
    from daemon.backup.manifest import BackupError

    from daemon.backup import s3

    dest = args.dest or str(config["backup.destination"]).strip() or None
    if dest is None:
        print("shoebox: no backup folder: give DEST or set [backup] destination", file=sys.stderr)
        return EXIT_BACKUP_REFUSED
    if args.keep is not None and args.keep < 1:
        print("shoebox: --keep must be 1 or more", file=sys.stderr)
        return 2
    options = BackupOptions(thumbnails=args.thumbnails, originals=args.originals)
    try:
        if s3.is_s3(dest):
            settings = s3.S3Settings.from_config(config.section("backup"))
            result = s3.make_s3_backup(url=dest, settings=settings, db_path=config.data / "shoebox.db",
                                       data=config.data, config_file=config.file, library=config.library,
                                       options=options)
            if args.keep:
                result.pruned = s3.prune_s3(dest, settings, args.keep, instance=result.manifest.instance)
        else:
            result = make_backup(db_path=config.data / "shoebox.db", data=config.data,
                                 destination=Path(dest).expanduser(), config_file=config.file,
                                 library=config.library, options=options)
            if args.keep:
                result.pruned = prune(Path(dest).expanduser(), args.keep, instance=result.manifest.instance)
    except BackupError as exc:
        print(f"shoebox: {exc}", file=sys.stderr)
        return EXIT_BACKUP_REFUSED
    except OSError as exc:  # e.g. no permission on the destination (a full disk: exit 5, in main)
        from daemon.system.diskspace import is_no_space
        if is_no_space(exc):
            raise
        print(f"shoebox: the backup failed and was removed: {exc}", file=sys.stderr)
        return EXIT_BACKUP_REFUSED
    print(result.url or result.path)
    print(f"backup of {len(result.manifest.files)} files ({result.bytes / 1e6:.1f} MB, schema "
          f"{result.manifest.schema_version}) in {result.seconds:.1f} s"
          + "".join(f"\nremoved the old backup {p}" for p in result.pruned), file=sys.stderr)
    return 0


def cmd_restore(config: Config, args: argparse.Namespace) -> int:
    """`shoebox restore SRC`: verify everything first, then restore into the stopped data folder."""
    from daemon.backup.manifest import BackupError
    from daemon.backup.restore import DataFolderBusy, check, describe, restore
    from daemon.store.db import migrations

    from daemon.backup import s3
    from daemon.system.permissions import private_dir

    shipped = len(migrations())
    src, downloaded = Path(args.src).expanduser(), None
    try:
        if s3.is_s3(args.src):  # downloaded into the data folder first, then verified like a folder
            private_dir(config.data)
            src = downloaded = s3.download(args.src, s3.S3Settings.from_config(config.section("backup")), config.data)
        if args.check:
            manifest = check(src, shipped)
            print(f"{args.src}: sound: {describe(manifest)}")
            return 0
        result = restore(src, config.data, shipped=shipped, library=config.library, replace=args.replace,
                         originals=args.originals)
    except DataFolderBusy as exc:
        print(f"shoebox: {exc}", file=sys.stderr)
        return 3
    except BackupError as exc:
        print(f"shoebox: restore refused, nothing was changed: {exc}", file=sys.stderr)
        return EXIT_BACKUP_REFUSED
    finally:
        if downloaded is not None:
            import shutil
            shutil.rmtree(downloaded.parent, ignore_errors=True)
    m = result.manifest
    print(f"restored {args.src} ({describe(m)}) into {config.data}")
    if result.replaced_to:
        print(f"the data folder's previous database and keys were moved to {result.replaced_to}")
    if result.config_written:
        print(f"the configuration it was made with ({m.config_file}) is at {result.config_written}: "
              "compare it with yours and copy it over if you want it")
    if args.originals:
        print(f"originals: {result.originals_copied} copied into {config.library}, "
              f"{result.originals_kept} already there (left as they were)")
    if m.schema_version < shipped:
        print(f"the database is at schema {m.schema_version}; the next start updates it to {shipped}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

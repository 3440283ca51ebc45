"""`shoebox doctor`: what is wrong with this installation and what to do about it, one line each.

An appliance owner meets problems as symptoms ("no new photos", "the app says insecure"); the
causes are a handful of things a program can check in a second: a full disk, a data folder the
service cannot write, a clock in 1970 (a Pi without network time: dates and certificates go wrong),
missing models or tools, an expiring certificate, a damaged database, a service without its
watchdog. Each check answers ok / warn / fail with one sentence and, when not ok, the fix.

Nothing here changes anything: the database is opened read-only, tools are asked their version.
Exit code: 0 all ok, 1 something to look at (warn), 2 something broken (fail) - for scripts.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import stat
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from daemon.config import Config

OK, WARN, FAIL = "ok", "warn", "fail"
CERT_WARN_DAYS = 30  # the daemon renews its own certificate 30 days ahead; a user's one needs a person
TOOL_TIMEOUT_S = 10
# Shoebox did not exist before this: a clock earlier than it is certainly wrong (a Pi without an
# RTC boots in 1970 until network time arrives).
EARLIEST_PLAUSIBLE = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


@dataclass
class Finding:
    check: str
    state: str  # ok, warn, fail
    message: str
    fix: str = ""

    def line(self) -> str:
        mark = {OK: "ok  ", WARN: "WARN", FAIL: "FAIL"}[self.state]
        return f"{mark} {self.check}: {self.message}" + (f" -> {self.fix}" if self.fix else "")


def _mib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def check_disks(config: Config) -> list[Finding]:
    keep = config["index.min_free_mib"] << 20
    out = []
    for name, path in (("data", config.data), ("library", config.library)):
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            free = shutil.disk_usage(probe).free
        except OSError as exc:
            out.append(Finding(f"disk ({name})", FAIL, f"cannot read the free space of {path}: {exc.strerror or exc}"))
            continue
        if name == "data" and free < keep:
            out.append(Finding("disk (data)", FAIL, f"{_mib(free)} free at {path}, below the {_mib(keep)} kept free: "
                               "indexing is paused", "free space on that disk or lower [index] min_free_mib"))
        elif free < 4 * keep:
            out.append(Finding(f"disk ({name})", WARN, f"only {_mib(free)} free at {path}",
                               "free some space before it fills up"))
        else:
            out.append(Finding(f"disk ({name})", OK, f"{_mib(free)} free at {path}"))
    return out


def check_permissions(config: Config) -> list[Finding]:
    data, library = config.data, config.library
    out = []
    if not data.is_dir():
        return [Finding("permissions", FAIL, f"the data folder {data} does not exist",
                        "start `shoebox serve` once (it makes it) or fix `data` in the configuration")]
    if not os.access(data, os.W_OK | os.X_OK):
        out.append(Finding("permissions", FAIL, f"the data folder {data} cannot be written by this user (uid {os.getuid()})",
                           f"chown -R the service's user {data}"))
    mode = stat.S_IMODE(data.stat().st_mode)
    if mode & 0o077:
        out.append(Finding("permissions", WARN, f"the data folder {data} is open to other users (mode {mode:o})",
                           f"chmod 700 {data} (it holds the accounts and keys)"))
    for secret in sorted(p for p in (data / "secret.key", data / "shoebox.db", data / "tls" / "ca.key",
                                     data / "tls" / "server.key") if p.exists()):
        m = stat.S_IMODE(secret.stat().st_mode)
        if m & 0o077:
            out.append(Finding("permissions", FAIL, f"{secret} is readable by other users (mode {m:o})",
                               f"chmod 600 {secret}"))
    if not library.is_dir():
        out.append(Finding("permissions", FAIL, f"the library {library} is not there (a drive not mounted?)",
                           "mount the drive or fix `library`; nothing is deleted meanwhile"))
    elif not os.access(library, os.R_OK | os.X_OK):
        out.append(Finding("permissions", FAIL, f"the library {library} cannot be read by this user",
                           "give the service's user read access to it"))
    if not out:
        out.append(Finding("permissions", OK, f"data folder private, library {library} readable"))
    return out


def check_clock(now: dt.datetime | None = None) -> list[Finding]:
    now = now or dt.datetime.now(dt.timezone.utc)
    if now < EARLIEST_PLAUSIBLE:
        return [Finding("clock", FAIL, f"the system clock says {now:%Y-%m-%d}, which cannot be right",
                        "enable network time (timedatectl set-ntp true) or set the date; certificates, "
                        "tokens and new photos' dates depend on it")]
    synced = Path("/run/systemd/timesync/synchronized")
    if Path("/run/systemd/system").is_dir() and not synced.exists():
        return [Finding("clock", WARN, f"{now:%Y-%m-%d %H:%M} UTC, not confirmed by network time",
                        "timedatectl set-ntp true")]
    return [Finding("clock", OK, f"{now:%Y-%m-%d %H:%M} UTC")]


def check_models(config: Config) -> list[Finding]:
    if not config["tagging.enabled"]:
        return [Finding("models", OK, "tagging is off")]
    from daemon.vision.tagger import MODEL_FILES

    folder = Path(config["tagging.models_dir"])
    wanted = {"labels"} if config["tagging.labels"] else set()
    if config["tagging.faces"]:
        wanted |= {"faces", "embeddings"}
    if config["tagging.nsfw"]:
        wanted.add("nsfw")
    missing = sorted(MODEL_FILES[t] for t in wanted if not (folder / MODEL_FILES[t]).is_file())
    if missing:
        return [Finding("models", FAIL, f"missing in {folder}: {', '.join(missing)}; those tasks wait",
                        "copy the models folder of the release there or fix [tagging] models_dir")]
    return [Finding("models", OK, f"{len(wanted)} model files in {folder}")]


def _tool_version(command: list[str]) -> tuple[str | None, str]:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    except FileNotFoundError:
        return None, "not found"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        return None, said[-1] if said else f"exit {done.returncode}"
    return (done.stdout.strip().splitlines() or [""])[0], ""


def check_tools(config: Config) -> list[Finding]:
    out = []
    for name, command, package in (("exiftool", [config["index.exiftool"], "-ver"], "libimage-exiftool-perl"),
                                   ("ffmpeg", [config["index.ffmpeg"], "-version"], "ffmpeg"),
                                   ("ffprobe", [config["index.ffprobe"], "-version"], "ffmpeg")):
        version, why = _tool_version(command)
        if version is None:
            out.append(Finding(name, FAIL, f"{command[0]}: {why}",
                               f"apt install {package} (or fix [index] {name} in the configuration)"))
        else:
            out.append(Finding(name, OK, version.split(" Copyright")[0][:80]))
    return out


def _certificate_file(config: Config) -> Path | None:
    settings = config.section("server")
    if not settings.get("https", False):
        return None
    own = settings.get("tls_cert") or ""
    return Path(own) if own else config.data / "tls" / "server.crt"


def check_certificate(config: Config, now: dt.datetime | None = None) -> list[Finding]:
    path = _certificate_file(config)
    if path is None:
        return [Finding("certificate", OK, "HTTPS is off (behind a reverse proxy, or plain HTTP)")]
    if not path.is_file():
        return [Finding("certificate", WARN, f"{path} does not exist yet",
                        "start `shoebox serve` once: it makes its certificate")]
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError as exc:
        return [Finding("certificate", FAIL, f"{path} is not a PEM certificate: {exc}",
                        "replace it (or remove it: a generated one is made again)")]
    now = now or dt.datetime.now(dt.timezone.utc)
    left = cert.not_valid_after_utc - now
    own = bool(config.section("server").get("tls_cert"))
    if left.total_seconds() <= 0:
        return [Finding("certificate", FAIL, f"{path} expired on {cert.not_valid_after_utc:%Y-%m-%d}",
                        "renew your certificate" if own else "restart shoebox: it makes a new one")]
    if left.days < CERT_WARN_DAYS and own:
        return [Finding("certificate", WARN, f"{path} expires in {left.days} days",
                        "renew your certificate before it does")]
    return [Finding("certificate", OK, f"valid until {cert.not_valid_after_utc:%Y-%m-%d} ({left.days} days)")]


def check_database(config: Config) -> list[Finding]:
    path = config.data / "shoebox.db"
    if not path.exists():
        return [Finding("database", WARN, f"{path} does not exist yet", "start `shoebox serve` once")]
    from daemon.store.db import migrations

    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            check = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return [Finding("database", FAIL, f"{path} cannot be read: {exc}",
                        "restore the last backup (shoebox restore); the photos themselves are untouched")]
    problems = [row[0] for row in check if row[0] != "ok"]
    if problems:
        return [Finding("database", FAIL, f"{path} is damaged: {problems[0]}",
                        "restore the last backup (shoebox restore); the photos themselves are untouched")]
    shipped = len(migrations())
    if version > shipped:
        return [Finding("database", FAIL, f"schema {version} is newer than this Shoebox ({shipped})",
                        "upgrade Shoebox, or restore a backup made by this version")]
    pending = f"; {shipped - version} migration(s) at the next start" if version < shipped else ""
    return [Finding("database", OK, f"intact, schema {version}{pending}")]


def check_watchdog(environ: dict[str, str] | None = None,
                   run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> list[Finding]:
    """Whether the installed service has systemd's watchdog on (a hung daemon is then restarted)."""
    systemctl = shutil.which("systemctl")
    if systemctl is None or not Path("/run/systemd/system").is_dir():
        return [Finding("watchdog", OK, "not running under systemd here (nothing to check)")]
    try:
        done = run([systemctl, "show", "shoebox.service", "-p", "WatchdogUSec", "-p", "LoadState", "-p", "ActiveState"],
                   capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [Finding("watchdog", WARN, f"systemctl did not answer: {exc}")]
    props = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    if props.get("LoadState") != "loaded":
        return [Finding("watchdog", OK, "shoebox.service is not installed (running by hand)")]
    usec = props.get("WatchdogUSec", "0")
    if usec in ("0", "infinity", ""):
        return [Finding("watchdog", WARN, "shoebox.service has no watchdog: a hung daemon would stay hung",
                        "install the shipped unit (WatchdogSec=60)")]
    return [Finding("watchdog", OK, f"on ({usec}), service {props.get('ActiveState', '?')}")]


CHECKS: tuple[Callable[[Config], list[Finding]], ...] = (
    check_disks, check_permissions, lambda c: check_clock(), check_models, check_tools, check_certificate,
    check_database, lambda c: check_watchdog(),
)


def diagnose(config: Config) -> list[Finding]:
    findings: list[Finding] = []
    for check in CHECKS:
        try:
            findings.extend(check(config))
        except Exception as exc:  # a check that breaks is itself a finding, never a traceback
            findings.append(Finding(getattr(check, "__name__", "check").replace("check_", ""), FAIL,
                                    f"could not be checked: {type(exc).__name__}: {exc}"))
    return findings


def exit_code(findings: list[Finding]) -> int:
    states = {f.state for f in findings}
    return 2 if FAIL in states else 1 if WARN in states else 0


def as_json(findings: list[Finding]) -> dict[str, Any]:
    return {"ok": exit_code(findings) == 0, "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "findings": [asdict(f) for f in findings]}

"""`shoebox doctor` on a real installation (the indexed sample library), healthy and then broken
one way at a time as owners break them: each problem is named on one line with its fix, and the
exit code tells a script (0 ok, 1 warnings, 2 problems)."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from daemon.system.doctor import FAIL, OK, WARN, check_certificate, check_clock
from tests.integration.support import REPO, SHOEBOX, make_config

MODELS = REPO / "models"


def doctor(library: Path, data: Path, *flags: str) -> tuple[int, list[str], dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOEBOX_")}
    base = [*SHOEBOX, "doctor", "--library", str(library), "--data", str(data), "--tagging-models-dir", str(MODELS),
            "--server-https", "false", *flags]
    text = subprocess.run(base, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    as_json = subprocess.run([*base, "--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert as_json.returncode == text.returncode, (text.stdout, as_json.stdout)
    return text.returncode, text.stdout.splitlines(), json.loads(as_json.stdout)


def line_of(lines: list[str], check: str) -> str:
    return next(line for line in lines if line.split(":", 1)[0].split(None, 1)[1] == check)


@pytest.mark.slow
def test_a_healthy_installation_is_all_ok(copy: tuple[Path, Path]) -> None:
    code, lines, report = doctor(*copy)
    checks = {f["check"] for f in report["findings"]}
    assert {"disk (data)", "disk (library)", "permissions", "clock", "models", "exiftool", "ffmpeg", "ffprobe",
            "certificate", "database", "watchdog"} <= checks
    assert code == 0 and report["ok"], lines
    assert all(line.startswith("ok ") for line in lines), lines
    assert "intact, schema" in line_of(lines, "database")


@pytest.mark.slow
def test_each_broken_thing_is_named_with_its_fix(copy: tuple[Path, Path], tmp_path: Path) -> None:
    library, data = copy
    # loose permissions on the keys and the folder
    (data / "secret.key").chmod(0o644)
    data.chmod(0o755)
    # a damaged database: a page in the middle overwritten
    db = data / "shoebox.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = db.stat().st_size
    with open(db, "r+b") as f:
        f.seek(size // 2 - (size // 2) % 4096)
        f.write(os.urandom(4096))
    empty_models = tmp_path / "no-models"
    empty_models.mkdir()
    code, lines, report = doctor(library, data, "--index-exiftool", "/nonexistent/exiftool",
                                 "--tagging-models-dir", str(empty_models), "--index-min-free-mib", str(2**20))  # 1 TiB kept free
    assert code == 2 and not report["ok"]
    joined = "\n".join(lines)
    assert f"FAIL permissions: {data / 'secret.key'} is readable by other users" in joined and "chmod 600" in joined
    assert "open to other users (mode 755)" in joined and f"chmod 700 {data}" in joined
    assert line_of(lines, "exiftool").startswith("FAIL") and "apt install libimage-exiftool-perl" in joined
    assert line_of(lines, "models").startswith("FAIL") and "efficientnet_lite0_int8.tflite" in line_of(lines, "models")
    assert line_of(lines, "disk (data)").startswith("FAIL") and "min_free_mib" in line_of(lines, "disk (data)")
    database = line_of(lines, "database")
    assert database.startswith("FAIL") and "shoebox restore" in database, database
    # the tools that are fine still say so
    assert line_of(lines, "ffmpeg").startswith("ok ")


@pytest.mark.slow
def test_a_database_from_a_newer_shoebox_is_named(copy: tuple[Path, Path]) -> None:
    library, data = copy
    with sqlite3.connect(data / "shoebox.db") as conn:
        conn.execute("PRAGMA user_version = 999")
    code, lines, _ = doctor(library, data)
    assert code == 2 and "schema 999 is newer than this Shoebox" in line_of(lines, "database")


def test_a_clock_in_1970_is_wrong() -> None:
    [finding] = check_clock(dt.datetime(1970, 1, 1, 0, 5, tzinfo=dt.timezone.utc))
    assert finding.state == FAIL and "timedatectl set-ntp true" in finding.fix


def _certificate(path: Path, days_left: float) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "photos.example")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=300))
            .not_valid_after(now + dt.timedelta(days=days_left)).sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@pytest.mark.parametrize("days_left, state", [(200, OK), (10, WARN), (-1, FAIL)])
def test_a_users_certificate_is_checked_for_expiry(tmp_path: Path, days_left: float, state: str) -> None:
    cert = tmp_path / "own.crt"
    _certificate(cert, days_left)
    config = make_config(tmp_path / "library", tmp_path / "data", server__https=True, server__tls_cert=str(cert),
                         server__tls_key=str(tmp_path / "own.key"))
    [finding] = check_certificate(config)
    assert finding.state == state, finding
    if state != OK:
        assert "renew your certificate" in finding.fix

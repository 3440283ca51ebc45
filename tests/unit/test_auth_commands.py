"""`shoebox users`: the real command, as an operator types it (no default account, ever)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from daemon.auth import passwords
from tests.integration.support import shoebox

# slow: runs the real shoebox users command
pytestmark = pytest.mark.slow


def users(tmp_path: Path, *args: str, password: str | None = None, check: bool = True):  # type: ignore[no-untyped-def]
    return shoebox("users", *args, "--library", str(tmp_path / "lib"), "--data", str(tmp_path / "data"),
                   input=None if password is None else password + "\n", check=check)


def stored_hash(tmp_path: Path, name: str) -> str:
    with sqlite3.connect(tmp_path / "data" / "shoebox.db") as conn:
        return conn.execute("SELECT password_hash FROM users WHERE name = ?", (name,)).fetchone()[0]


def test_users_add_list_passwd_role_remove(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    out = users(tmp_path, "list")
    assert "no accounts yet" in out.stdout and "users add NAME --role admin" in out.stdout

    users(tmp_path, "add", "ann", "--role", "admin", "--password-stdin", password="correct horse battery")
    assert passwords.verify_password(stored_hash(tmp_path, "ann"), "correct horse battery")
    listed = json.loads(users(tmp_path, "list", "--json").stdout)
    assert [(u["name"], u["role"]) for u in listed] == [("ann", "admin")]

    # no terminal and no --password-stdin: refused, never a default or empty password
    out = users(tmp_path, "add", "bob", check=False)
    assert out.returncode == 1 and "--password-stdin" in out.stderr
    out = users(tmp_path, "add", "bob", "--password-stdin", password="short", check=False)
    assert out.returncode == 1 and "at least 8" in out.stderr
    out = users(tmp_path, "add", "ANN", "--password-stdin", password="another password", check=False)
    assert out.returncode == 1 and "already exists" in out.stderr

    users(tmp_path, "passwd", "ann", "--password-stdin", password="a new long password")
    assert passwords.verify_password(stored_hash(tmp_path, "ann"), "a new long password")
    assert not passwords.verify_password(stored_hash(tmp_path, "ann"), "correct horse battery")

    out = users(tmp_path, "remove", "ann", check=False)
    assert out.returncode == 1 and "last admin" in out.stderr
    users(tmp_path, "add", "bob", "--role", "viewer", "--password-stdin", password="bobs password")
    users(tmp_path, "role", "bob", "admin")
    users(tmp_path, "remove", "ann")
    listed = json.loads(users(tmp_path, "list", "--json").stdout)
    assert [(u["name"], u["role"]) for u in listed] == [("bob", "admin")]
    out = users(tmp_path, "passwd", "nobody", "--password-stdin", password="whatever123", check=False)
    assert out.returncode == 1 and "no user named 'nobody'" in out.stderr

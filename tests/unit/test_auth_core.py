"""Passwords, tokens, the signing secret, login limits and account rules, without a server."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
import warnings
from pathlib import Path

import jwt
import pytest

from daemon.auth import accounts, passwords, sessions
from daemon.auth.errors import AccountError, Conflict, InvalidCredentials
from daemon.auth.limiter import AddressLimiter, AttemptLimiter, Refused
from daemon.auth.roles import Role, Scope, parse_role, parse_scopes
from daemon.auth.secret import SecretError, load_or_create_secret
from daemon.auth.tokens import ACCESS, THUMB, TokenSigner, token_hash
from daemon.store.db import apply_migrations


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    c = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    c.row_factory = sqlite3.Row
    c.execute("PRAGMA foreign_keys = ON")
    apply_migrations(c)
    return c


def test_passwords_are_argon2id_with_pi_parameters_and_verify() -> None:
    stored = passwords.hash_password("correct horse battery")
    assert stored.startswith("$argon2id$") and "m=32768,t=2,p=1" in stored
    assert passwords.verify_password(stored, "correct horse battery")
    assert not passwords.verify_password(stored, "correct horse batterY")
    assert not passwords.verify_password("not a hash", "whatever")
    assert passwords.hash_password("correct horse battery") != stored  # salted
    # a hash made with other (older, weaker) parameters is upgraded at the next login
    from argon2 import PasswordHasher
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("pw pw pw pw")
    assert passwords.verify_password(weak, "pw pw pw pw") and passwords.needs_rehash(weak)
    assert not passwords.needs_rehash(stored)


@pytest.mark.parametrize("bad,why", [("short", "at least 8"), (" " * 12, "only spaces"), ("x" * 2000, "at most")])
def test_weak_passwords_are_refused_with_a_reason(bad: str, why: str) -> None:
    with pytest.raises(passwords.WeakPassword, match=why):
        passwords.hash_password(bad)


def test_access_tokens_expire_and_cannot_be_forged_or_swapped() -> None:
    signer = TokenSigner(b"k" * 32, access_ttl=900)
    token, exp = signer.access_token("sess1", 7)
    claims = signer.decode(token, kind=ACCESS)
    assert (claims.session_uid, claims.user_id) == ("sess1", 7) and exp - time.time() == pytest.approx(900, abs=2)
    with pytest.raises(InvalidCredentials, match="expired"):
        signer.decode(token, kind=ACCESS, now=exp + 1)
    with pytest.raises(InvalidCredentials):
        TokenSigner(b"z" * 32).decode(token, kind=ACCESS)  # another secret
    payload = jwt.decode(token, options={"verify_signature": False})
    with warnings.catch_warnings():  # PyJWT warns that 32 bytes are short for HS512: that is the point
        warnings.simplefilter("ignore")
        other_alg = jwt.encode(payload, b"k" * 32, algorithm="HS512")  # same key, algorithm not pinned
    for forged in (jwt.encode({**payload, "sub": "1"}, None, algorithm="none"), other_alg,
                   token[:-3] + ("aaa" if token[-3:] != "aaa" else "bbb")):
        with pytest.raises(InvalidCredentials):
            signer.decode(forged, kind=ACCESS)
    with pytest.raises(InvalidCredentials, match="kind"):
        signer.decode(token, kind=THUMB)


def test_thumbnail_tokens_are_stable_for_a_day_and_only_thumbnail_tokens() -> None:
    signer = TokenSigner(b"k" * 32, thumb_ttl=7 * 86400)
    morning = 1_700_006_400 + 3600  # 01:00 UTC
    a, exp = signer.thumb_token("s", 1, now=morning)
    b, _ = signer.thumb_token("s", 1, now=morning + 20 * 3600)
    c, _ = signer.thumb_token("s", 1, now=morning + 24 * 3600)
    assert a == b != c
    assert 7 * 86400 < exp - morning <= 8 * 86400
    assert signer.decode(a, kind=THUMB, now=morning).session_uid == "s"
    with pytest.raises(InvalidCredentials):
        signer.decode(a, kind=ACCESS, now=morning)


def test_the_secret_is_made_once_with_mode_0600_and_tightened_if_loose(tmp_path: Path) -> None:
    key = load_or_create_secret(tmp_path)
    path = tmp_path / "secret.key"
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(tmp_path) == key
    os.chmod(path, 0o644)
    assert load_or_create_secret(tmp_path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("not hex at all")
    with pytest.raises(SecretError, match="delete it"):
        load_or_create_secret(tmp_path)


def test_address_limiter_blocks_after_the_limit_and_forgets_after_the_window() -> None:
    lim = AddressLimiter(3, 60.0)
    for t in (0.0, 1.0, 2.0):
        assert lim.retry_after("10.0.0.5", now=t) == 0
        lim.failed("10.0.0.5", now=t)
    assert 55 <= lim.retry_after("10.0.0.5", now=3.0) <= 60
    assert lim.retry_after("10.0.0.6", now=3.0) == 0  # others are not affected
    assert lim.retry_after("10.0.0.5", now=61.5) == 0  # the first failure has aged out
    lim.succeeded("10.0.0.5")
    assert lim.retry_after("10.0.0.5", now=3.0) == 0
    small = AddressLimiter(1, 60.0, max_addresses=100)
    for i in range(1000):
        small.failed(f"a{i}", now=1.0)
    assert len(small._failures) == 100  # bounded memory under a spray of addresses


def test_attempt_limiter_backs_off_per_pair_and_slows_an_attacked_account_without_locking_it() -> None:
    lim = AttemptLimiter(pair_free=2, address_failures=100, target_failures=4, window=900)
    # attempts are counted when they begin: two in flight use the pair's allowance
    first, second = lim.begin("ann", "10.0.0.5", now=0.0), lim.begin("ann", "10.0.0.5", now=0.0)
    with pytest.raises(Refused) as refused:
        lim.begin("ann", "10.0.0.5", now=0.0)
    assert refused.value.reason == "pair"
    first.failed(now=0.5)
    second.failed(now=0.5)
    with pytest.raises(Refused) as refused:
        lim.begin("ann", "10.0.0.5", now=1.0)
    assert refused.value.retry_after == 2  # 2 s after the end of the last failed check
    lim.begin("ann", "10.0.0.5", now=2.6).failed(now=2.6)  # the backoff doubles: 4 s now
    with pytest.raises(Refused):
        lim.begin("ann", "10.0.0.5", now=6.0)
    lim.begin("ann", "10.0.0.6", now=7.0).failed(now=7.0)  # the fourth failure: ann is under attack
    assert lim.under_attack("ann", now=7.0)
    # an address that never failed on ann still gets checked, one at a time, once a second
    owner = lim.begin("ann", "192.168.1.2", now=7.0)
    with pytest.raises(Refused) as refused:
        lim.begin("ann", "192.168.1.3", now=7.2)
    assert refused.value.reason == "target" and refused.value.retry_after == 1
    owner.succeeded(now=7.3)
    assert lim.begin("ann", "192.168.1.2", now=8.1)  # the owner's address is as fresh as before
    # an address that failed once on an attacked account backs off at once
    with pytest.raises(Refused):
        lim.begin("ann", "10.0.0.6", now=8.2)
    # other accounts are not affected
    assert lim.begin("bob", "10.0.0.7", now=8.2)


def test_account_rules_last_admin_names_and_password_change(conn: sqlite3.Connection) -> None:
    accounts.create_user(conn, "ann", Role.ADMIN, "h1")
    with pytest.raises(Conflict):
        accounts.create_user(conn, "ANN", Role.USER, "h2")  # names compare without case
    for bad in ("", "a b", "../x", "x" * 65, "-dash"):
        with pytest.raises(AccountError):
            accounts.create_user(conn, bad, Role.USER, "h")
    with pytest.raises(AccountError, match="last admin"):
        accounts.remove_user(conn, "ann")
    with pytest.raises(AccountError, match="last admin"):
        accounts.set_role(conn, "ann", Role.VIEWER)
    uid = accounts.create_user(conn, "bob", Role.USER, "h3")
    sessions.create_session(conn, uid, token_hash("r1"), address="1.2.3.4", user_agent="phone", ttl=3600)
    sessions.create_session(conn, uid, token_hash("r2"), address="1.2.3.4", user_agent="laptop", ttl=3600)
    assert len(sessions.list_sessions(conn, uid, None)) == 2
    assert accounts.set_password(conn, "bob", "h4") == 2  # every session ends
    assert sessions.list_sessions(conn, uid, None) == []
    accounts.set_role(conn, "bob", Role.ADMIN)
    accounts.remove_user(conn, "ann")  # no longer the last admin
    assert [u["name"] for u in accounts.list_users(conn)] == ["bob"]


def test_roles_and_scopes_parse_with_clear_errors() -> None:
    assert parse_role(" Admin ") is Role.ADMIN
    with pytest.raises(ValueError, match="allowed: admin, user, viewer"):
        parse_role("root")
    assert parse_scopes(["read", "THUMBNAILS"]) == {Scope.READ, Scope.THUMBNAILS}
    with pytest.raises(ValueError, match="unknown scope 'sudo'"):
        parse_scopes(["read", "sudo"])

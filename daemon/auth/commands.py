"""`shoebox users add|list|passwd|role|remove`: accounts from the command line.

The command works on the database directly (its own connection, WAL), so it also works while
`shoebox serve` runs, and on a fresh data directory before the first start. Passwords are read
with getpass (twice, to catch a typo) or, for scripts, one line from standard input with
--password-stdin; never from a flag, which would leave them in the shell history and `ps`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sqlite3
import sys
from pathlib import Path
from typing import Callable, TextIO

from daemon.auth import accounts, passwords
from daemon.auth.errors import AuthError
from daemon.auth.roles import Role, parse_role
from daemon.store.db import in_transaction, open_sync
from daemon.system.permissions import private_dir



def add_parser(sub: argparse._SubParsersAction, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("users", help="accounts: add, list, passwd, role, remove (there is no default account)")
    users = p.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    roles = [r.value for r in Role]
    a = users.add_parser("add", help="create an account (the first should be --role admin)")
    common(a)
    a.add_argument("name")
    a.add_argument("--role", default="user", choices=roles, help="admin, user (edits) or viewer (read-only); default user")
    a.add_argument("--password-stdin", action="store_true", help="read the password as one line from standard input")
    a = users.add_parser("list", help="accounts with their roles")
    common(a)
    a.add_argument("--json", action="store_true")
    a = users.add_parser("passwd", help="set a new password (ends the user's sessions and app tokens, lifts a lockout)")
    common(a)
    a.add_argument("name")
    a.add_argument("--keep-tokens", action="store_true",
                   help="keep the user's app tokens working (default: a new password revokes them)")
    a.add_argument("--password-stdin", action="store_true", help="read the password as one line from standard input")
    a = users.add_parser("role", help="change an account's role")
    common(a)
    a.add_argument("name")
    a.add_argument("role", choices=roles)
    a = users.add_parser("remove", help="delete an account with its sessions and app tokens")
    common(a)
    a.add_argument("name")


def open_store(data: Path) -> sqlite3.Connection:
    private_dir(data)  # the first `users add` often makes the data directory: 0700 from the start
    return open_sync(data / "shoebox.db")


class PasswordInputError(Exception):
    pass


def read_password(from_stdin: bool, *, stdin: TextIO | None = None) -> str:
    stdin = stdin or sys.stdin
    if from_stdin:
        line = stdin.readline()
        if not line:
            raise PasswordInputError("no password on standard input")
        return line.rstrip("\r\n")
    if not stdin.isatty():
        raise PasswordInputError("no terminal to ask for the password on; use --password-stdin")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        raise PasswordInputError("the two passwords differ")
    return first


def run(data: Path, args: argparse.Namespace) -> int:
    """Carry out one `shoebox users` action; 0 on success, 1 on a refused request."""
    action = args.users_command
    conn = open_store(data)
    try:
        if action == "list":
            users = accounts.list_users(conn)
            if args.json:
                print(json.dumps(users, indent=2))
            elif not users:
                print("no accounts yet: create the first with `shoebox users add NAME --role admin`")
            for u in users if not args.json else []:  # (no lock to show: failed logins back off, see limiter)
                print(f"{u['name']:<24} {u['role']:<7} since {u['created_at']}"
                      f"  last login {u['last_login_at'] or 'never'}  {u['sessions']} session(s)")
            return 0
        if action in ("add", "passwd"):
            if action == "passwd" and accounts.get_user(conn, args.name) is None:
                raise AuthError(f"no user named {args.name!r}")
            if action == "add":
                accounts.check_name(args.name)
                if accounts.get_user(conn, args.name) is not None:
                    raise AuthError(f"a user named {args.name!r} already exists")
            password = read_password(args.password_stdin)
            hashed = passwords.hash_password(password)
            if action == "add":
                role = parse_role(args.role)
                in_transaction(conn, lambda c: accounts.create_user(c, args.name, role, hashed))
                print(f"created {role.value} {args.name!r}", file=sys.stderr)
            else:
                keep = bool(getattr(args, "keep_tokens", False))
                ended = in_transaction(conn, lambda c: accounts.set_password(c, args.name, hashed, keep_tokens=keep))
                tokens = "app tokens kept" if keep else "app tokens revoked"
                print(f"password changed for {args.name!r}; {ended} session(s) ended, {tokens}", file=sys.stderr)
            return 0
        if action == "role":
            role = parse_role(args.role)
            in_transaction(conn, lambda c: accounts.set_role(c, args.name, role))
            print(f"{args.name!r} is now {role.value}", file=sys.stderr)
            return 0
        if action == "remove":
            in_transaction(conn, lambda c: accounts.remove_user(c, args.name))
            print(f"removed {args.name!r}", file=sys.stderr)
            return 0
        raise AssertionError(action)
    except (AuthError, PasswordInputError, passwords.WeakPassword, ValueError) as exc:
        print(f"shoebox users {action}: {getattr(exc, 'message', None) or exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()

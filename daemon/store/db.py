"""The SQLite store: one writer connection, a few reader connections, WAL, numbered migrations.

Why this shape: SQLite allows one writer at a time. Funnelling every write through one
connection (guarded by an asyncio lock) means no `database is locked` retries, and a write
transaction is a plain synchronous function run whole inside the writer's own thread: one hop
from the event loop per transaction instead of one per statement, and nothing can interleave
with it. Readers are separate connections that WAL lets run beside the writer.

aiosqlite runs each connection in its own thread; `Connection._execute(fn)` is the one place we
use its internals (pinned in pyproject.toml) to run a whole function in that thread.

Readers are a pool, not a rotation: a read takes whichever reader is idle, so one slow query holds
one connection and never queues the reads behind it. Every connection the store opens is a
`StoreConnection`: the search language's SQL functions are registered once, when it opens
(SQLite refuses to define a function while any statement on the connection is still running, so
registering per query broke every search run inside another query's loop), and statements can be
given deadlines (daemon.store.deadlines), which is how a search is held to its time budget.

Events follow one rule: the code that makes a change stages the events describing it inside the
very transaction that makes it (`write_staged` hands the function a `stage(type, data)`), so they
commit or roll back together, and they are announced (delivered from the outbox) only after the
commit. A kill -9 between the commit and the delivery loses nothing: the events wait in the outbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
import re
import sqlite3
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable, Protocol, Sequence, TypeVar

import aiosqlite

from daemon.system.permissions import private_file, tighten_existing

from daemon.search.functions import register_functions

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


#: What a staged write function is given: `stage("album.created", {...})` puts the event into the
#: outbox inside the current transaction (daemon.events.bus for the types).
Stage = Callable[[str, dict[str, Any]], None]


class Outbox(Protocol):
    """Where staged events go (daemon.events.bus.EventBus): `stage` runs in the writer thread inside
    the transaction, `announce` on the event loop after the commit."""

    def stage(self, conn: sqlite3.Connection, type: str, data: dict[str, Any]) -> Any: ...

    def announce(self, events: list[Any]) -> None: ...


class StoreError(RuntimeError):
    """The database cannot be used as it is (newer schema, failed integrity check, no WAL)."""


class StoreConnection(sqlite3.Connection):
    """A sqlite3 connection as the store opens it: the search functions are registered once, here
    (see the module docstring), and `deadlines` holds the end times daemon.store.deadlines has set on it.

    `query_budget` is the seconds one search may run on this connection (None: no limit); the
    Database sets it from the configuration, and daemon.search reads it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadlines: list[float] = []  # see daemon.store.deadlines
        self.query_budget: float | None = None
        register_functions(self)
        self.functions_registered = True


def _configure(conn: sqlite3.Connection, *, readonly: bool) -> None:
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 10000")
    # NORMAL is durable across application crashes in WAL mode; only a power cut may lose the
    # last transactions, never corrupt the database.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -8000")  # 8 MB per connection: a Pi has little to spare
    if readonly:
        conn.execute("PRAGMA query_only = ON")


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped in daemon/store/migrations, in order."""
    found = []
    folder = resources.files("daemon.store") / "migrations"
    for entry in folder.iterdir():
        m = MIGRATION_NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise StoreError(f"migrations must be numbered 0001, 0002, ... without gaps: {versions}")
    return found


def apply_migrations(conn: sqlite3.Connection, before_each: Callable[[str], object] | None = None) -> list[str]:
    """Bring the schema up to date; each migration in its own transaction. Returns those applied.
    `before_each(name)` is told before each one starts (a migration of a big library is slow: the
    service manager is asked for more time)."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    applied = []
    shipped = migrations()
    if current > len(shipped):
        raise StoreError(
            f"the database schema is version {current} but this Shoebox knows only {len(shipped)}: "
            "it was opened by a newer version; upgrade Shoebox or restore a backup"
        )
    for version, name, sql in shipped:
        if version <= current:
            continue
        if before_each is not None:
            before_each(name)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_sql(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


def _split_sql(sql: str) -> Iterable[str]:
    """Split a migration into statements (sqlite3.complete_statement handles triggers)."""
    buf = ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                yield buf
            buf = ""
    if buf.strip() and not buf.strip().startswith("--"):
        yield buf


def in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run fn(conn) as one IMMEDIATE transaction: commit, or roll back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def open_sync(path: Path, *, migrate: bool = True) -> sqlite3.Connection:
    """A plain connection for command-line tools that run beside the daemon (`shoebox users`,
    `shoebox people`): WAL and a busy timeout let them write between the daemon's short
    transactions; the schema is brought up to date first, as the daemon would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    private_file(path)  # 0600 before SQLite opens it: its -wal and -shm files take the same mode
    conn = sqlite3.connect(path, isolation_level=None, timeout=10, factory=StoreConnection)
    conn.execute("PRAGMA journal_mode = WAL")
    _configure(conn, readonly=False)
    if migrate:
        apply_migrations(conn)
    return conn


class Database:
    """The store's connections. Open with `await Database.open(path)`; close with `close()`."""

    def __init__(self, path: Path, *, readers: int = 2, query_seconds: float | None = None) -> None:
        self.path = path
        self._reader_count = max(1, readers)
        self.query_seconds = query_seconds
        self._writer: aiosqlite.Connection | None = None
        self._readers: list[aiosqlite.Connection] = []
        self._idle: list[aiosqlite.Connection] = []
        self._waiting: deque[asyncio.Future[aiosqlite.Connection]] = deque()
        self._write_lock = asyncio.Lock()
        #: Counts write transactions: a reader's result computed at generation g is still true
        #: while the generation is g (this process is the only writer of its data directory).
        self.generation = 0
        #: The event outbox `write_staged` stages into; the App wires the event bus here. Without
        #: one (a tool that opens the store alone) there is nobody to tell and staging does nothing.
        self._on_migration: Callable[[str], object] | None = None
        self.outbox: Outbox | None = None

    @classmethod
    async def open(cls, path: Path, *, readers: int = 2, query_seconds: float | None = None,
                   on_migration: Callable[[str], object] | None = None) -> "Database":
        """Open the writer and `readers` reader connections; `query_seconds` is how long one search
        may run on any of them (None: no limit), see daemon.search.engine; `on_migration(name)` is
        called (in the writer's thread) before each migration is applied."""
        db = cls(path, readers=readers, query_seconds=query_seconds)
        db._on_migration = on_migration
        try:
            await db._open()
        except BaseException:
            # aiosqlite runs each connection in a non-daemon thread: a connection left open here
            # would keep the process alive after the error (a hung `shoebox index`).
            await db.close(checkpoint=False)
            raise
        return db

    async def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        private_file(self.path)  # 0600 before SQLite opens it: its -wal and -shm files take the same mode
        self._writer = await aiosqlite.connect(self.path, isolation_level=None, factory=StoreConnection)

        def setup(conn: sqlite3.Connection) -> list[str]:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"could not switch {self.path} to WAL mode (got {mode})")
            _configure(conn, readonly=False)
            self._set_budget(conn)
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StoreError(f"database {self.path} failed its integrity check: {check}")
            return apply_migrations(conn, self._on_migration)

        applied = await self._run(self._writer, setup)
        tighten_existing(Path(f"{self.path}-wal"), Path(f"{self.path}-shm"))  # made wider by an older version
        if applied:
            log.info("database %s: applied migrations %s", self.path, ", ".join(applied))
        for _ in range(self._reader_count):
            reader = await aiosqlite.connect(self.path, isolation_level=None, factory=StoreConnection)
            self._readers.append(reader)
            await self._run(reader, lambda c: (_configure(c, readonly=True), self._set_budget(c)))
            self._idle.append(reader)

    def _set_budget(self, conn: sqlite3.Connection) -> None:
        if isinstance(conn, StoreConnection):
            conn.query_budget = self.query_seconds

    @staticmethod
    async def _run(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await conn._execute(fn, conn._conn)  # the whole function in the connection's thread

    async def close(self, *, checkpoint: bool = True) -> None:
        while self._waiting:  # reads still waiting for a reader will not get one
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(StoreError("the database was closed"))
        for conn in self._readers:
            await conn.close()
        self._readers.clear()
        self._idle.clear()
        if self._writer is not None:
            # Fold the WAL back into the main file so a copy of the .db alone is a full backup.
            if checkpoint:
                try:
                    await self._run(self._writer, lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
                except sqlite3.Error as exc:  # pragma: no cover - best effort
                    log.warning("checkpoint on close failed: %s", exc)
            await self._writer.close()
            self._writer = None

    # -- writing ---------------------------------------------------------------------------------

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn(conn) as one IMMEDIATE transaction on the writer; commit, or roll back on error."""
        assert self._writer is not None, "database is closed"

        async with self._write_lock:
            try:
                return await self._run(self._writer, lambda conn: in_transaction(conn, fn))
            finally:
                self.generation += 1

    async def write_staged(self, fn: Callable[[sqlite3.Connection, Stage], T]) -> T:
        """Like `write`, and fn gets a `stage(type, data)` as well: the events it stages are stored
        in the outbox inside the same transaction (a rollback takes them too) and announced to the
        transports once it committed."""
        outbox = self.outbox
        staged: list[Any] = []

        def run(conn: sqlite3.Connection) -> T:
            def stage(type: str, data: dict[str, Any]) -> None:
                if outbox is not None:
                    staged.append(outbox.stage(conn, type, data))

            return fn(conn, stage)

        result = await self.write(run)
        if staged and outbox is not None:
            outbox.announce(staged)
        return result

    async def execute_write(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """One write statement in its own transaction; returns the number of rows changed."""
        return await self.write(lambda c: c.execute(sql, params).rowcount)

    # -- reading ---------------------------------------------------------------------------------

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn(conn) on an idle reader connection (a consistent snapshot for its duration);
        waits for one when all are busy. A read that fails leaves the reader as it found it."""
        assert self._readers, "database is closed"
        reader = await self._acquire()

        def snapshot(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN")
            try:
                result = fn(conn)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        try:
            return await self._run(reader, snapshot)
        finally:
            self._release(reader)

    async def _acquire(self) -> aiosqlite.Connection:
        """An idle reader, or the next one freed, first come first served: a freed reader is handed
        to the longest waiter directly, so a client that keeps sending slow queries cannot keep
        jumping the queue ahead of others (each waits at most for the reads queued before it)."""
        if self._idle and not self._waiting:
            return self._idle.pop()
        waiter: asyncio.Future[aiosqlite.Connection] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(waiter.result())  # handed over just as the request was cancelled
            else:
                self._waiting.remove(waiter)
            raise

    def _release(self, reader: aiosqlite.Connection) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(reader)
                return
        self._idle.append(reader)

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        return await self.read(lambda c: c.execute(sql, params).fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Row | None:
        return await self.read(lambda c: c.execute(sql, params).fetchone())

    async def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]


@asynccontextmanager
async def opened(path: Path, *, readers: int = 2) -> AsyncIterator[Database]:
    db = await Database.open(path, readers=readers)
    try:
        yield db
    finally:
        await db.close()

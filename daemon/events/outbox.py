"""The persistent outbox (tables `events` and `event_cursors`): the SQL of it, in one place.

Events are rows in `events` (`seq` is their order) from the transaction that staged them until
every durable transport (MQTT, each webhook subscription) has moved its cursor in
`event_cursors` past them. Everything here is a plain synchronous function run inside the store's
writer or a reader thread (daemon.store.db), so a caller can put it into its own transaction.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

from daemon.timeutil import utcnow

READ_BATCH = 200


def event_time() -> str:
    """UTC ISO-8601 with milliseconds: events within one second still read in order."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Event:
    """One thing that happened. `seq` is its place in the outbox (0 until stored)."""

    id: str
    type: str
    time: str
    data: dict[str, Any]
    seq: int = 0

    def payload(self) -> dict[str, Any]:
        """What every transport sends: {id, type, time, data}."""
        return {"id": self.id, "type": self.type, "time": self.time, "data": self.data}

    def body(self) -> bytes:
        return json.dumps(self.payload(), separators=(",", ":"), ensure_ascii=False).encode()


def store_events(conn: sqlite3.Connection, events: list[Event], outbox_max: int) -> int:
    """Insert events (setting their seq), prune what every durable transport has delivered and
    cut the oldest beyond `outbox_max`. Returns how many undelivered events the bound dropped."""
    for ev in events:
        cur = conn.execute("INSERT INTO events (id, type, time, data) VALUES (?, ?, ?, ?)",
                           (ev.id, ev.type, ev.time, json.dumps(ev.data, ensure_ascii=False)))
        ev.seq = int(cur.lastrowid or 0)
    if not prune(conn):
        return 0
    count = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    dropped = max(0, count - outbox_max)
    if dropped:
        conn.execute("DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)", (dropped,))
        add_dropped(conn, dropped)
    return dropped


def prune(conn: sqlite3.Connection) -> bool:
    """Delete the events every durable transport has delivered. False if none keeps a cursor (then
    nothing durable wants any event, and none is kept)."""
    low = conn.execute("SELECT min(seq) FROM event_cursors").fetchone()[0]
    if low is None:
        conn.execute("DELETE FROM events")
        return False
    conn.execute("DELETE FROM events WHERE seq <= ?", (low,))
    return True


def add_dropped(conn: sqlite3.Connection, n: int) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('events.dropped', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + excluded.value", (str(n),))


def events_after(conn: sqlite3.Connection, seq: int, limit: int = READ_BATCH) -> list[Event]:
    rows = conn.execute("SELECT seq, id, type, time, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                        (seq, limit)).fetchall()
    return [Event(id=r["id"], type=r["type"], time=r["time"], data=json.loads(r["data"]), seq=r["seq"])
            for r in rows]


def ensure_cursor(conn: sqlite3.Connection, name: str) -> int:
    """The transport's cursor; a new transport starts at the newest event (no replay of history)."""
    row = conn.execute("SELECT seq FROM event_cursors WHERE transport = ?", (name,)).fetchone()
    if row is not None:
        return int(row[0])
    top = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    seq = int(top[0]) if top else 0
    conn.execute("INSERT INTO event_cursors (transport, seq, updated_at) VALUES (?, ?, ?)", (name, seq, utcnow()))
    return seq


def set_cursor(conn: sqlite3.Connection, name: str, seq: int) -> None:
    """Move a transport's cursor (never backwards) and drop what everyone has now delivered."""
    conn.execute("UPDATE event_cursors SET seq = max(seq, ?), updated_at = ? WHERE transport = ?",
                 (seq, utcnow(), name))
    prune(conn)


def drop_cursor(conn: sqlite3.Connection, name: str) -> None:
    conn.execute("DELETE FROM event_cursors WHERE transport = ?", (name,))


def keep_only_cursors(conn: sqlite3.Connection, names: Iterable[str]) -> None:
    """Forget cursors of transports that are no longer configured, so they hold no events."""
    names = list(names)
    marks = ",".join("?" * len(names))
    conn.execute(f"DELETE FROM event_cursors WHERE transport NOT IN ({marks})" if names
                 else "DELETE FROM event_cursors", names)


def instance_id(conn: sqlite3.Connection) -> str:
    """This library's stable id (MQTT topics, zeroconf TXT, HA unique ids): made once, kept in meta."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'instance.id'").fetchone()
    if row is not None:
        return str(row[0])
    value = secrets.token_hex(6)
    conn.execute("INSERT INTO meta (key, value) VALUES ('instance.id', ?)", (value,))
    return value


def outbox_status(conn: sqlite3.Connection) -> dict[str, Any]:
    """Outbox size, what the bound dropped, each transport's cursor and the newest seq (for /status)."""
    outbox = conn.execute("SELECT count(*), max(seq) FROM events").fetchone()
    dropped = conn.execute("SELECT value FROM meta WHERE key = 'events.dropped'").fetchone()
    cursors = {r["transport"]: r["seq"] for r in conn.execute("SELECT transport, seq FROM event_cursors")}
    top = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    return {"outbox": outbox[0], "dropped": int(dropped[0]) if dropped else 0, "cursors": cursors,
            "last_seq": int(top[0]) if top else 0}


def newest_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])


def stage_beside(conn: sqlite3.Connection, event_id: str, type: str, data: dict[str, Any], outbox_max: int) -> Event:
    """Stage an event from a tool that writes beside the daemon (`shoebox people`), inside the
    tool's own transaction: the same rule as Database.write_staged. A running daemon's transports
    find it within a few seconds (they look at the outbox now and then, not only when told), a
    stopped one's at the next start. Kept only while some transport keeps a cursor, as always."""
    event = Event(id=event_id, type=type, time=event_time(), data=dict(data))
    store_events(conn, [event], outbox_max)
    return event

"""Webhooks: subscriptions (URL, event types, secret, on/off) kept in SQLite, and one durable
transport per subscription that POSTs each event as signed JSON.

Why per subscription: each receiver has its own cursor in the outbox, so a receiver that is down
holds back only its own deliveries, in order, while the others (and MQTT) carry on. A failed
attempt is retried with exponential backoff and jitter; the time of the next attempt and the
count of failures in a row are stored, so a restart neither forgets a retry nor hammers a
receiver that was failing. After `max_failures` failures in a row the subscription is disabled
and a `webhook.disabled` event says so.

The signature: `X-Shoebox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>`
over the exact body bytes. Receivers check it and the timestamp's age (replays), and de-duplicate
by the event id (`X-Shoebox-Delivery`, also `id` in the body): a delivery whose answer was lost is
sent again. Redirects are not followed (a 3xx is a failure): a signed request must not be passed
on to wherever a receiver points it.

Least information (issue 9): targets on loopback, link-local and other non-routable addresses are
refused unless an admin allows them (daemon.events.targets, checked again at every delivery by
the HTTP client's resolver, against DNS rebinding). The delivery log must not become a port
scanner either: an attempt records only "HTTP <status>", "redirect (not followed)", "target not
allowed" or "connection failed" -- never a server's banner, body or the system's error text --
and a connection that fails fast (a closed port) is recorded no sooner than one that times out
(a filtered host), so neither the text nor the timing tells them apart. URLs are shown masked
(daemon.redaction.mask_url): credentials in them are never echoed, not even to admins.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import secrets
import sqlite3
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from daemon.events.targets import GuardedResolver, TargetPolicy, refused_in
from daemon.events.bus import EVENT_TYPES, WEBHOOK_DISABLED, Event, EventBus, TransportStopped, type_matches
from daemon.events.outbox import drop_cursor, ensure_cursor
from daemon.redaction import mask_url
from daemon.store.db import Database, Stage
from daemon.timeutil import utcnow

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Shoebox-Signature"
DELIVERY_LOG_KEEP = 200  # attempts kept per subscription
RELOAD_SECONDS = 5.0  # how soon a subscription added with the CLI (another process) starts
CONNECTION_FAILED = "connection failed"
TARGET_REFUSED = "target not allowed"


class WebhookError(Exception):
    """A subscription that cannot be stored (bad URL, unknown event type, no such id)."""


@dataclass
class Subscription:
    id: int
    url: str
    events: list[str]
    secret: str
    enabled: bool
    failures: int
    retry_at: float | None
    disabled_reason: str | None
    created_at: str
    updated_at: str

    @property
    def transport_name(self) -> str:
        return transport_name(self.id)

    def public(self) -> dict[str, Any]:
        """For listings and the API (admins only): the secret hidden, credentials in the URL masked."""
        out = asdict(self)
        out["secret"] = "***"
        out["url"] = mask_url(self.url)
        return out


def transport_name(webhook_id: int) -> str:
    return f"webhook:{webhook_id}"


# -- signing --------------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Shoebox-Signature header value for this body at this time."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, *, tolerance: float = 300.0, now: float | None = None) -> bool:
    """What a receiver does (the README shows the same in a few lines): parse t and v1, recompute,
    compare in constant time, refuse a timestamp older than `tolerance` seconds."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


# -- the store: synchronous, run inside Database.write / Database.read ------------------------------


def _row(r: sqlite3.Row) -> Subscription:
    return Subscription(id=r["id"], url=r["url"], events=json.loads(r["events"]), secret=r["secret"],
                        enabled=bool(r["enabled"]), failures=r["failures"], retry_at=r["retry_at"],
                        disabled_reason=r["disabled_reason"], created_at=r["created_at"], updated_at=r["updated_at"])


def check_url(url: str) -> str:
    """The URL, stripped, if it is http(s) with a host; WebhookError otherwise."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError(f"webhook URL {url!r} must be an http:// or https:// URL with a host")
    return url


def _check_events(events: list[str] | None) -> list[str]:
    out = []
    for e in events or []:
        e = e.strip()
        if not e:
            continue
        if e != "*" and e not in EVENT_TYPES and not (e.endswith(".*") and any(t.startswith(e[:-1]) for t in EVENT_TYPES)):
            raise WebhookError(f"unknown event type {e!r}; known: {', '.join(EVENT_TYPES)} (or a prefix like photo.*)")
        out.append(e)
    return out


def create_webhook(conn: sqlite3.Connection, url: str, events: list[str] | None = None,
                   secret: str | None = None) -> Subscription:
    """A new, enabled subscription. Its cursor starts at the newest event: it gets what happens
    from now on. Without a secret one is generated (shown once by the caller)."""
    url = check_url(url)
    events = _check_events(events)
    secret = secret if secret else secrets.token_urlsafe(32)
    if len(secret) < 16:
        raise WebhookError("a webhook secret must be at least 16 characters long")
    now = utcnow()
    cur = conn.execute("INSERT INTO webhooks (url, events, secret, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                       (url, json.dumps(events), secret, now, now))
    webhook_id = int(cur.lastrowid or 0)
    ensure_cursor(conn, transport_name(webhook_id))
    return get_webhook(conn, webhook_id)


def get_webhook(conn: sqlite3.Connection, webhook_id: int) -> Subscription:
    row = conn.execute("SELECT * FROM webhooks WHERE id = ?", (webhook_id,)).fetchone()
    if row is None:
        raise WebhookError(f"no webhook with id {webhook_id}")
    return _row(row)


def list_webhooks(conn: sqlite3.Connection) -> list[Subscription]:
    return [_row(r) for r in conn.execute("SELECT * FROM webhooks ORDER BY id")]


def update_webhook(conn: sqlite3.Connection, webhook_id: int, *, url: str | None = None,
                   events: list[str] | None = None, secret: str | None = None,
                   enabled: bool | None = None) -> Subscription:
    """Change a subscription. Enabling it again clears its failures; it resumes with the events
    raised from then on (what happened while it was off is not replayed)."""
    sub = get_webhook(conn, webhook_id)
    fields: dict[str, Any] = {}
    if url is not None:
        fields["url"] = check_url(url)
    if events is not None:
        fields["events"] = json.dumps(_check_events(events))
    if secret is not None:
        if len(secret) < 16:
            raise WebhookError("a webhook secret must be at least 16 characters long")
        fields["secret"] = secret
    if enabled is not None and enabled != sub.enabled:
        fields["enabled"] = int(enabled)
        name = transport_name(webhook_id)
        if enabled:
            fields.update(failures=0, retry_at=None, disabled_reason=None)
            drop_cursor(conn, name)
            ensure_cursor(conn, name)
        else:
            fields["disabled_reason"] = "disabled by an administrator"
            drop_cursor(conn, name)
    if fields:
        fields["updated_at"] = utcnow()
        assigns = ", ".join(f"{k} = ?" for k in fields)
        conn.execute(f"UPDATE webhooks SET {assigns} WHERE id = ?", (*fields.values(), webhook_id))
    return get_webhook(conn, webhook_id)


def delete_webhook(conn: sqlite3.Connection, webhook_id: int) -> None:
    get_webhook(conn, webhook_id)
    conn.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
    drop_cursor(conn, transport_name(webhook_id))


def list_deliveries(conn: sqlite3.Connection, webhook_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """The delivery log, newest first: every attempt with its HTTP status, latency and error."""
    get_webhook(conn, webhook_id)
    rows = conn.execute(
        "SELECT event_id, event_type, attempt, ok, status, latency_ms, error, at FROM webhook_deliveries"
        " WHERE webhook_id = ? ORDER BY id DESC LIMIT ?", (webhook_id, limit)).fetchall()
    return [{**dict(r), "ok": bool(r["ok"])} for r in rows]


def enabled_transport_names(conn: sqlite3.Connection) -> list[str]:
    return [transport_name(r[0]) for r in conn.execute("SELECT id FROM webhooks WHERE enabled = 1")]


def _record_attempt(conn: sqlite3.Connection, sub_id: int, event: Event, attempt: int, ok: bool,
                    status: int | None, latency_ms: float | None, error: str | None, failures: int,
                    retry_at: float | None, disable_reason: str | None) -> None:
    conn.execute(
        "INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, attempt, ok, status, latency_ms, error, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (sub_id, event.id, event.type, attempt, int(ok), status, latency_ms, error, utcnow()))
    conn.execute(
        "DELETE FROM webhook_deliveries WHERE webhook_id = ? AND id <= (SELECT id FROM webhook_deliveries"
        " WHERE webhook_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)", (sub_id, sub_id, DELIVERY_LOG_KEEP))
    if disable_reason is not None:
        conn.execute("UPDATE webhooks SET failures = ?, retry_at = NULL, enabled = 0, disabled_reason = ?,"
                     " updated_at = ? WHERE id = ?", (failures, disable_reason, utcnow(), sub_id))
        drop_cursor(conn, transport_name(sub_id))
    else:
        conn.execute("UPDATE webhooks SET failures = ?, retry_at = ? WHERE id = ?", (failures, retry_at, sub_id))


# -- delivery -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookSettings:
    timeout: float = 10.0
    max_failures: int = 15
    retry_base: float = 2.0
    retry_max: float = 3600.0
    concurrency: int = 4
    allow_private_targets: str = ""

    @classmethod
    def from_section(cls, section: dict[str, Any]) -> "WebhookSettings":
        return cls(**{k: v for k, v in section.items() if k in cls.__dataclass_fields__})

    @property
    def targets(self) -> TargetPolicy:
        return TargetPolicy.parse(self.allow_private_targets)


class WebhookTransport:
    """One subscription as a durable transport ("webhook:<id>")."""

    def __init__(self, sub: Subscription, manager: "WebhookManager") -> None:
        self.sub = sub
        self.name = sub.transport_name
        self.manager = manager

    @property
    def connected(self) -> bool:
        return self.sub.failures == 0

    def accepts(self, event: Event) -> bool:
        return type_matches(self.sub.events, event.type)

    def status(self) -> dict[str, Any]:
        return {"url": mask_url(self.sub.url), "failures": self.sub.failures, "retry_at": self.sub.retry_at}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def deliver(self, event: Event) -> None:
        m = self.manager
        while True:
            sub = self.sub
            wait = (sub.retry_at or 0.0) - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            attempt = sub.failures + 1
            started = time.monotonic()
            async with m.slots:
                ok, status, latency_ms, error = await m.post(sub, event)
            if error == CONNECTION_FAILED:  # a closed port must not answer faster than a filtered host
                await asyncio.sleep(max(0.0, started + m.settings.timeout - time.monotonic()))
            failures = 0 if ok else sub.failures + 1
            retry_at = None if ok else time.time() + m.backoff(failures)
            disable = None
            if not ok and failures >= m.settings.max_failures:
                disable = f"{failures} failed deliveries in a row; last: {error}"
            def record(conn: sqlite3.Connection, stage: Stage) -> None:
                _record_attempt(conn, sub.id, event, attempt, ok, status, latency_ms, error, failures, retry_at,
                                disable)
                if disable is not None:  # turned off and announced in one transaction
                    stage(WEBHOOK_DISABLED, {"webhook": sub.id, "reason": disable})

            await m.db.write_staged(record)
            sub.failures, sub.retry_at = failures, retry_at
            if ok:
                return
            log.info("webhook %d: delivery of %s failed (%s); attempt %d", sub.id, event.id, error, attempt)
            if disable is not None:
                sub.enabled, sub.disabled_reason = False, disable
                log.warning("webhook %d (%s) disabled: %s", sub.id, mask_url(sub.url), disable)
                raise TransportStopped(disable)


class WebhookManager:
    """Keeps one WebhookTransport per enabled subscription on the bus, and the HTTP session they
    share (bounded concurrency: `concurrency` requests at once over all receivers)."""

    def __init__(self, db: Database, bus: EventBus, settings: WebhookSettings, *, user_agent: str,
                 rng: random.Random | None = None) -> None:
        self.db = db
        self.bus = bus
        self.settings = settings
        self.user_agent = user_agent
        self.rng = rng or random.SystemRandom()
        self.slots = asyncio.Semaphore(max(1, settings.concurrency))
        self.targets = settings.targets
        self._resolver: GuardedResolver | None = None
        self.session: aiohttp.ClientSession | None = None
        self.transports: dict[int, WebhookTransport] = {}
        self._task: asyncio.Task[None] | None = None

    def backoff(self, failures: int) -> float:
        """Exponential backoff with jitter: base * 2^(n-1), capped, then scaled by 0.5..1."""
        s = self.settings
        delay = min(s.retry_max, s.retry_base * (2 ** min(failures - 1, 30)))
        return delay * (0.5 + 0.5 * self.rng.random())

    async def post(self, sub: Subscription, event: Event) -> tuple[bool, int | None, float | None, str | None]:
        """One attempt: (ok, HTTP status, latency in ms, generic error). What went wrong in detail
        goes to the debug log only, never to the delivery log an API client can read."""
        assert self.session is not None
        try:  # an address literal skips the resolver: check it here (a name is checked by the resolver)
            parts = urlsplit(sub.url)
            host = parts.hostname or ""
            port = parts.port or (443 if parts.scheme == "https" else 80)
            if _is_literal(host):
                self.targets.check(host, [host], port)
        except (OSError, ValueError) as exc:
            log.debug("webhook %d: %s", sub.id, exc)
            return False, None, None, TARGET_REFUSED
        body = event.body()
        headers = {"Content-Type": "application/json", "User-Agent": self.user_agent,
                   "X-Shoebox-Event": event.type, "X-Shoebox-Delivery": event.id,
                   SIGNATURE_HEADER: sign(sub.secret, int(time.time()), body)}
        started = time.perf_counter()
        try:
            async with self.session.post(sub.url, data=body, headers=headers, allow_redirects=False) as resp:
                await resp.read()
                latency = round((time.perf_counter() - started) * 1000, 1)
                if 200 <= resp.status < 300:
                    return True, resp.status, latency, None
                why = f"HTTP {resp.status}"
                if 300 <= resp.status < 400:
                    why += " redirect (redirects are not followed)"
                return False, resp.status, latency, why
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            if refused_in(exc) is not None:
                log.debug("webhook %d: %s", sub.id, refused_in(exc))
                return False, None, None, TARGET_REFUSED
            log.debug("webhook %d: delivery failed: %s", sub.id, type(exc).__name__)
            return False, None, None, CONNECTION_FAILED

    async def start(self) -> None:
        self._resolver = GuardedResolver(self.targets)
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            connector=aiohttp.TCPConnector(resolver=self._resolver))
        await self.sync()
        self._task = asyncio.create_task(self._reload_forever(), name="webhooks-reload")

    async def sync(self) -> None:
        """Match the running transports to the table (the CLI may change it from another process)."""
        subs = {s.id: s for s in await self.db.read(list_webhooks)}
        for wid in list(self.transports):
            sub = subs.get(wid)
            if sub is None or not sub.enabled:
                self.transports.pop(wid)
                await self.bus.remove_transport(transport_name(wid), forget=True)
            else:
                t = self.transports[wid]
                t.sub.url, t.sub.events, t.sub.secret = sub.url, sub.events, sub.secret
        for wid, sub in subs.items():
            if sub.enabled and wid not in self.transports:
                t = WebhookTransport(sub, self)
                self.transports[wid] = t
                await self.bus.add_transport(t, window=1)

    async def _reload_forever(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_SECONDS)
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhooks: could not reload subscriptions")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for wid in list(self.transports):
            self.transports.pop(wid)
            await self.bus.remove_transport(transport_name(wid))
        if self.session is not None:
            await self.session.close()
            self.session = None
        if self._resolver is not None:  # a resolver handed to the connector is not closed by it
            await self._resolver.close()
            self._resolver = None


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True

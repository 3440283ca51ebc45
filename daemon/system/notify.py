"""What systemd is told (the sd_notify protocol), without a dependency.

The protocol is one datagram of `KEY=value` lines to the socket named in $NOTIFY_SOCKET (an
abstract socket when it starts with "@"); outside systemd the variable is unset and every call
does nothing. What Shoebox says, and why:

- READY=1 once the HTTP servers answer and zeroconf is announced: `systemctl start` returns, and
  units ordered after Shoebox start, only when the app can really be opened.
- STATUS=... every few seconds: `systemctl status shoebox` shows what it is doing ("indexing
  1,204 of 5,000 files") without reading the log.
- WATCHDOG=1 from the event loop itself, every half of WatchdogSec: a loop blocked by a bug (a
  decode or a query run on it by mistake) stops feeding the watchdog and systemd restarts the
  service, which is the only cure for a hung single-process server.
- EXTEND_TIMEOUT_USEC before slow steps of the start (the integrity check, each migration, the
  first build of the places database): a big library on an SD card must not be killed for being
  slow to start.
- STOPPING=1 when it begins to shut down.

Sending never blocks the loop: the socket is non-blocking and a datagram systemd cannot take now
is dropped (the next one follows soon).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """The service manager's ear; a no-op without $NOTIFY_SOCKET."""

    def __init__(self, address: str | None = None, *, watchdog_usec: int | None = None) -> None:
        self.address = "\0" + address[1:] if address and address.startswith("@") else address
        self.watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> "Notifier":
        """From $NOTIFY_SOCKET and $WATCHDOG_USEC (the latter only if $WATCHDOG_PID is unset or is
        this process: a child must not feed its parent's watchdog)."""
        env = os.environ if environ is None else environ
        usec: int | None = None
        pid = env.get("WATCHDOG_PID")
        if env.get("WATCHDOG_USEC") and (not pid or pid == str(os.getpid())):
            try:
                usec = int(env["WATCHDOG_USEC"]) or None
            except ValueError:
                usec = None
        return cls(env.get("NOTIFY_SOCKET") or None, watchdog_usec=usec)

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 messages: half the timeout systemd gave, or None."""
        return self.watchdog_usec / 2_000_000 if self.enabled and self.watchdog_usec else None

    def send(self, *fields: str) -> None:
        if not self.address:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:  # systemd busy or gone: the next message follows soon
            log.debug("sd_notify %s: %s", fields, exc)

    def ready(self, status: str | None = None) -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def extend_timeout(self, seconds: float, why: str | None = None) -> None:
        """Ask for `seconds` more before systemd gives up on the current start or stop step."""
        self.send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}", *([f"STATUS={why}"] if why else []))

    async def feed_watchdog(self) -> None:
        """WATCHDOG=1 every half timeout, sent by the event loop itself until cancelled (a blocked
        loop sends nothing, which is the point)."""
        interval = self.watchdog_interval
        if interval is None:
            return
        while True:
            self.watchdog()
            await asyncio.sleep(interval)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def status_line(status: Mapping[str, object]) -> str:
    """One line for `systemctl status` from the App's status: what it does now and the size of the
    library ("indexing: 1,204 files queued; 12,345 photos" or "idle; 12,345 photos")."""
    photos = status.get("photos") if isinstance(status.get("photos"), dict) else {}
    total = int(photos.get("total", 0)) if isinstance(photos, dict) else 0
    queue = status.get("queue") if isinstance(status.get("queue"), dict) else {}
    index_q = int(queue.get("index", 0)) if isinstance(queue, dict) else 0
    tag_q = int(queue.get("tag", 0)) if isinstance(queue, dict) else 0
    parts = []
    if status.get("paused"):
        parts.append("indexing paused")
    elif index_q:
        parts.append(f"indexing: {index_q:,} files queued")
    if tag_q:
        parts.append(f"tagging: {tag_q:,} photos queued")
    doing = "; ".join(parts) or "idle"
    return f"{doing}; {total:,} photos"

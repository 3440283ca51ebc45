"""systemd readiness and stopping notifications (sd_notify), without a dependency.

The protocol is one datagram to the socket named in $NOTIFY_SOCKET; outside systemd the variable
is unset and these calls do nothing.
"""

from __future__ import annotations

import os
import socket


def _send(message: str) -> None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(address)
            sock.sendall(message.encode())
        except OSError:
            pass


def ready() -> None:
    _send("READY=1")


def stopping() -> None:
    _send("STOPPING=1")


def watchdog() -> None:
    _send("WATCHDOG=1")

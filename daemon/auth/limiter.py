"""Failed-login limits per address, in memory (per account they live in the users table).

Why both: a limit per account stops guessing one user's password from many addresses; a limit
per address stops one address from trying many user names. The per-account lockout is stored
(users.locked_until), so restarting the daemon does not reset it; the per-address count is only
in memory, bounded in size, because addresses are cheap to change and a restart is rare.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque


class AddressLimiter:
    """At most `limit` failed logins per address within `window` seconds."""

    def __init__(self, limit: int, window: float, *, max_addresses: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str, now: float) -> deque[float] | None:
        q = self._failures.get(address)
        if q is None:
            return None
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._failures[address]
            return None
        return q

    def retry_after(self, address: str, *, now: float | None = None) -> int:
        """Seconds until this address may try again; 0 when it may now."""
        now = time.monotonic() if now is None else now
        q = self._recent(address, now)
        if q is None or len(q) < self.limit:
            return 0
        return max(1, int(q[-self.limit] + self.window - now) + 1)

    def failed(self, address: str, *, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        q = self._recent(address, now)
        if q is None:
            q = self._failures[address] = deque(maxlen=self.limit)
        q.append(now)
        self._failures.move_to_end(address)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

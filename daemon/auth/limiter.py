"""Limits on guessing secrets (account passwords, share-link passwords, share tokens), in memory.

The rule, as well-known systems draw it (OWASP's authentication guidance, fail2ban's per-address
counters, the "smart lockout" of large identity providers): never a hard lock on the account,
because then anyone who knows a user name can lock its owner out; instead

- per (account, address) pair: `pair_free` failures, then exponential backoff (2 s, 4 s, 8 s ...
  up to `window` seconds, counted from the end of the last failed check) before that address
  may try that account again; a success clears it;
- per address: at most `address_failures` failures within `window` seconds, whatever the
  accounts (fail2ban's rule; stops one device trying many user names);
- per account, over every address: past `target_failures` failures within `window` the account
  is under attack. Then an address that failed on it must wait out its backoff from its first
  failure, and the others (an address that has not failed on it: the owner's phone) are let
  through one at a time, at most one check per `target_interval` seconds. A botnet spending a
  fresh address per guess gets one guess a second at most, and the owner, whose address has not
  failed, still gets in with the right password (after at most a `Retry-After` of a second or two).

Attempts are counted before the password is checked (`begin` reserves the attempt as a failure,
synchronously, before the caller awaits the hash), so 30 parallel guesses get exactly the allowed
number of checks and the rest are refused at once, without costing an argon2 hash each.

In memory, and bounded (the least recently used entries go first) because counters keyed by
attacker-chosen names and addresses must not grow without end; a restart clears them, which a
client on the network cannot cause. `AddressLimiter` is the plain per-address window (share-token
guessing, and the per-address part above).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

#: First backoff step of a pair, in seconds; it doubles with each further failure.
BACKOFF_BASE = 2.0
#: How long a pair's failures are remembered after its last one (its backoff keeps growing meanwhile).
PAIR_MEMORY = 86400.0


class Refused(Exception):
    """An attempt refused before any check: try again in `retry_after` seconds. `reason` says
    which limit (for the 429's message): "pair", "address" or "target"."""

    def __init__(self, retry_after: int, reason: str) -> None:
        super().__init__(f"refused for {retry_after} s ({reason})")
        self.retry_after = retry_after
        self.reason = reason


class _Bounded(OrderedDict[K, V], Generic[K, V]):
    """An LRU dict: touching a key moves it to the end; beyond `limit` keys the oldest go."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def touch(self, key: K, value: V) -> V:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)
        return value


class AddressLimiter:
    """At most `limit` failures per address within `window` seconds."""

    def __init__(self, limit: int, window: float, *, max_addresses: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self._failures: _Bounded[str, deque[float]] = _Bounded(max_addresses)

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
        return max(1, math.ceil(q[-self.limit] + self.window - now))

    def failed(self, address: str, *, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        q = self._recent(address, now)
        if q is None:
            q = deque(maxlen=self.limit)
        q.append(now)
        self._failures.touch(address, q)

    def forget_one(self, address: str, stamp: float) -> None:
        """Take back one failure counted at `stamp` (a reserved attempt that succeeded)."""
        q = self._failures.get(address)
        if q is not None and stamp in q:
            q.remove(stamp)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


@dataclass
class _Pair:
    failures: int = 0
    last: float = 0.0


@dataclass
class _Target:
    failures: deque[float]
    next_clean: float = 0.0  # under attack: when the next address without failures may be checked
    checking: int = 0  # attempts of such addresses being checked right now


@dataclass
class Attempt:
    """One admitted attempt, already counted as a failure; end it with `failed()` or `succeeded()`."""

    limiter: "AttemptLimiter"
    target: str
    address: str
    stamp: float
    clean: bool  # admitted as an address without failures on an account under attack
    done: bool = False

    def failed(self, *, now: float | None = None) -> None:
        self._end(now)

    def succeeded(self, *, now: float | None = None) -> None:
        self._end(now)
        self.limiter._succeeded(self)

    def _end(self, now: float | None) -> None:
        if self.done:
            return
        self.done = True
        pair = self.limiter._pairs.get((self.target, self.address))
        if pair is not None:  # backoff runs from the end of the check, however long the hash took
            pair.last = max(pair.last, time.monotonic() if now is None else now)
        if self.clean:
            t = self.limiter._targets.get(self.target)
            if t is not None:
                t.checking -= 1


class AttemptLimiter:
    """Backoff per (target, address), a window per address and a slow-down per target (see the
    module docstring). A target is what the secret guards: an account name, a share link."""

    def __init__(self, *, pair_free: int, address_failures: int, target_failures: int, window: float,
                 target_interval: float = 1.0, max_keys: int = 10_000) -> None:
        self.pair_free = pair_free
        self.target_failures = target_failures
        self.window = window
        self.target_interval = target_interval
        self.addresses = AddressLimiter(address_failures, window, max_addresses=max_keys)
        self._pairs: _Bounded[tuple[str, str], _Pair] = _Bounded(max_keys)
        self._targets: _Bounded[str, _Target] = _Bounded(max_keys)

    def _pair_wait(self, pair: _Pair | None, now: float, *, free: int) -> float:
        if pair is None or now - pair.last > PAIR_MEMORY:
            return 0.0
        if pair.failures < free:
            return 0.0
        step = min(self.window, BACKOFF_BASE * 2.0 ** min(pair.failures - free, 32))
        return max(0.0, pair.last + step - now)

    def _target(self, target: str, now: float) -> _Target:
        t = self._targets.get(target)
        if t is None:
            t = _Target(failures=deque())
        while t.failures and t.failures[0] <= now - self.window:
            t.failures.popleft()
        return self._targets.touch(target, t)

    def under_attack(self, target: str, *, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return len(self._target(target, now).failures) >= self.target_failures

    def begin(self, target: str, address: str, *, now: float | None = None) -> Attempt:
        """Admit one attempt and count it as a failure now, or raise Refused. Synchronous: no
        other attempt can slip in between the check and the count."""
        now = time.monotonic() if now is None else now
        wait = self.addresses.retry_after(address, now=now)
        if wait:
            raise Refused(wait, "address")
        t = self._target(target, now)
        attacked = len(t.failures) >= self.target_failures
        pair = self._pairs.get((target, address))
        if pair is not None and now - pair.last > PAIR_MEMORY:
            pair = None
        failing = pair is not None and pair.failures > 0
        wait_s = self._pair_wait(pair, now, free=0 if attacked else self.pair_free)
        if wait_s > 0:
            raise Refused(max(1, math.ceil(wait_s)), "pair")
        clean = attacked and not failing
        if clean:
            if t.checking > 0 or now < t.next_clean:
                raise Refused(max(1, math.ceil(t.next_clean - now)), "target")
            t.checking += 1
            t.next_clean = now + self.target_interval
        pair = pair or _Pair()
        pair.failures += 1
        pair.last = now
        self._pairs.touch((target, address), pair)
        self.addresses.failed(address, now=now)
        t.failures.append(now)
        return Attempt(self, target, address, now, clean)

    def _succeeded(self, attempt: Attempt) -> None:
        """The right secret: this pair starts afresh; the reserved failure is taken back everywhere
        (the account's other failures stay: they were someone else's)."""
        self._pairs.pop((attempt.target, attempt.address), None)
        self.addresses.forget_one(attempt.address, attempt.stamp)
        t = self._targets.get(attempt.target)
        if t is not None and attempt.stamp in t.failures:
            t.failures.remove(attempt.stamp)

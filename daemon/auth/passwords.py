"""Password hashing with argon2id, sized for a Raspberry Pi.

Parameters: 32 MiB of memory, 2 passes, 1 lane. Measured on the development machine (AMD EPYC,
`python -m daemon.auth.passwords`): about 45 ms per hash; a Raspberry Pi 4 is 5-8 times slower
on memory-hard work, so about 0.25-0.35 s there: slow enough to make guessing expensive, fast
enough for a login, and small enough that the one auth thread never needs more than 32 MiB on a
2 GB board. This is above OWASP's argon2id floor (19 MiB, t=2, p=1). Hashes carry their
parameters, so changing them here upgrades each stored hash at its owner's next login
(`needs_rehash`).
"""

from __future__ import annotations

import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MEMORY_KIB = 32 * 1024
TIME_COST = 2
PARALLELISM = 1
MIN_LENGTH = 8
MAX_LENGTH = 1024  # hashing is cheap in length, but nobody types a megabyte

_HASHER = PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_KIB, parallelism=PARALLELISM)


class WeakPassword(ValueError):
    """A password that is refused before it is stored."""


def check_strength(password: str) -> None:
    """Refuse passwords that are too short or absurdly long, with a readable reason."""
    if not isinstance(password, str):
        raise WeakPassword("the password must be text")
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"the password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"the password must have at most {MAX_LENGTH} characters")
    if not password.strip():
        raise WeakPassword("the password must not be only spaces")


def hash_password(password: str) -> str:
    """The argon2id PHC string for a password that passed check_strength."""
    check_strength(password)
    return _HASHER.hash(password)


def verify_password(stored: str, password: str) -> bool:
    """True when password matches the stored hash; False for a mismatch or a broken hash."""
    try:
        return _HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """The stored hash was made with other parameters than today's."""
    try:
        return _HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True


# A hash of a password nobody has: verified against when the user name is unknown, so a login
# for a missing account takes as long as one for a real account (no user-name probing by timing).
DUMMY_HASH = _HASHER.hash("shoebox: no such user, this hash only burns the same time")


def measure(samples: int = 5) -> float:
    """Median seconds for one verify with today's parameters (figures in the README)."""
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        verify_password(DUMMY_HASH, "wrong password")
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


if __name__ == "__main__":  # pragma: no cover
    print(f"argon2id m={MEMORY_KIB // 1024} MiB t={TIME_COST} p={PARALLELISM}: {measure() * 1000:.1f} ms per hash")

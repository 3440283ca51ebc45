"""One way for tests to wait: poll a condition until it holds or a deadline passes.

Fixed sleeps make a suite slow on a quiet machine and flaky on a busy one; a deadline with a
short poll is both fast and patient. The failure message names what was awaited.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 20.0, interval: float = 0.05,
               what: str | None = None) -> T:
    """Call `condition` until it returns something truthy and return that; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition!r}")
        time.sleep(interval)


async def wait_until_async(condition: Callable[[], T | Awaitable[T]], timeout: float = 20.0,
                           interval: float = 0.05, what: str | None = None) -> T:
    """The same inside an event loop; `condition` may be a plain or an async function."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition!r}")
        await asyncio.sleep(interval)

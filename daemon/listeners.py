"""Who is told when something happened, and how they stop being told.

`subscribe` returns the function that ends the subscription, so whoever subscribes owns its end:
a command line progress bar ends it when the command does, a web app ties it to its own lifetime
with aiohttp's cleanup_ctx (`subscription` below). Nothing removes someone else's listener by
hand, and a web app that is torn down (tests start hundreds) leaves nothing subscribed.

Listeners are called in the event loop's thread, in the order they subscribed; one that raises
is logged and does not keep the others from hearing.
"""

from __future__ import annotations

import logging
from typing import AsyncIterator, Callable, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Listeners(Generic[T]):
    def __init__(self, what: str) -> None:
        self.what = what  # for the log: "stored", "tagged"
        self._fns: list[Callable[[T], object]] = []

    def subscribe(self, fn: Callable[[T], object]) -> Callable[[], None]:
        """Tell `fn` from now on; call the answer to stop (calling it twice is harmless)."""
        self._fns.append(fn)

        def unsubscribe() -> None:
            try:
                self._fns.remove(fn)
            except ValueError:
                pass

        return unsubscribe

    def emit(self, value: T) -> None:
        for fn in list(self._fns):
            try:
                fn(value)
            except Exception:  # one broken listener must not cost the others their news
                log.exception("a %s listener failed", self.what)

    def __len__(self) -> int:
        return len(self._fns)


def subscription(listeners: Listeners[T], fn: Callable[[T], object]) -> Callable[[object], AsyncIterator[None]]:
    """An aiohttp cleanup_ctx entry: subscribed while the web app runs, unsubscribed when it ends.
    (`web_app.cleanup_ctx.append(subscription(app.stored, view_state.on_stored))`)"""

    async def ctx(_web_app: object) -> AsyncIterator[None]:
        unsubscribe = listeners.subscribe(fn)
        try:
            yield
        finally:
            unsubscribe()

    return ctx

"""The one error the search language raises: the API turns it into a 400 naming the bad part."""

from __future__ import annotations


class SearchError(ValueError):
    """A query that cannot be run, with the filter (`key`) and value that made it so.

    `key` is the canonical filter name (or "q" for the query as a whole, "order", "cursor"),
    `value` the offending text; both None when the problem is not tied to one part.
    """

    def __init__(self, message: str, *, key: str | None = None, value: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.value = value

    @property
    def message(self) -> str:
        return str(self.args[0])


class QueryTooExpensive(SearchError):
    """A query refused for what it would cost (too many terms, album expansions or prefix words)
    or stopped because it ran past its time budget; also a 400, with the reason in the message."""

"""Folding text for comparisons, and FTS5 / LIKE / GLOB quoting of user text.

Everything the user typed reaches SQLite as a bound parameter; these helpers only make sure that
inside those parameters the user's text is data for the mini-languages (FTS5 query syntax, LIKE
and GLOB patterns) and never syntax.
"""

from __future__ import annotations

import unicodedata


def fold(text: str | None) -> str | None:
    """Case- and accent-insensitive form: 'Zürich' and 'ZURICH' both fold to 'zurich'. The same
    rule as the FTS5 tokenizer (unicode61 remove_diacritics 2), so filters and free text agree."""
    if text is None:
        return None
    decomposed = unicodedata.normalize("NFKD", str(text))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


def fts_phrase(text: str, *, prefix: bool = False) -> str:
    """A user's text as one FTS5 string: quotes doubled, so nothing in it is FTS5 syntax."""
    quoted = '"' + text.replace('"', '""') + '"'
    return quoted + " *" if prefix else quoted


def fts_column(column: str, texts: list[str]) -> str:
    """Match any of `texts` as phrases in one column of photos_fts (column names are ours)."""
    return "{" + column + "} : (" + " OR ".join(fts_phrase(t) for t in texts) + ")"


def like_escape(text: str) -> str:
    """Text for a LIKE pattern with ESCAPE '\\': % and _ are literal."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def glob_escape(text: str) -> str:
    """Text for a GLOB pattern where only the user's * and ? are wildcards."""
    return "".join("[" + ch + "]" if ch in "[]" else ch for ch in text)

"""Completions for the search box: filter names and the values people type most.

The web app sends the word under the cursor (`be`, `label:be`, `city:"new`); this module answers
what could finish it. The filter table in daemon.search.filters is the only list of filter names,
so a filter added there (or by a plugin) is offered without touching the app. Values come from
the store's small tables (labels, people, albums) and indexed columns (cities, countries,
cameras), each a prefix range on an index: cheap at a million photos.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from daemon.search.filters import ALIASES, FILTERS

#: value kind -> the filters whose values it completes
VALUE_FILTERS = {"label": "label", "person": "person", "album": "album", "city": "place",
                 "country": "place", "state": "place", "camera": "camera"}


def _quoted(value: str) -> str:
    """A value as the parser reads it back: quoted when it has a space or a quote-less colon."""
    if any(c in value for c in ' :|"()') or not value:
        return '"' + value.replace('"', "") + '"'
    return value


def _prefix_range(prefix: str) -> tuple[str, str]:
    """[lo, hi) of every string that starts with `prefix` (for an index range, not LIKE)."""
    return prefix, prefix + "\U0010ffff"


def _labels(conn: sqlite3.Connection, prefix: str, limit: int) -> list[tuple[str, int | None]]:
    lo, hi = _prefix_range(prefix)
    return [(r[0], None) for r in conn.execute(
        "SELECT name FROM labels WHERE hidden = 0 AND name >= ? AND name < ? COLLATE NOCASE"
        " ORDER BY priority DESC, name LIMIT ?", (lo, hi, limit))]


def _people(conn: sqlite3.Connection, prefix: str, limit: int) -> list[tuple[str, int | None]]:
    like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return [(r[0], None) for r in conn.execute(
        "SELECT name FROM people WHERE hidden = 0 AND name != '' AND (name LIKE ? ESCAPE '\\'"
        " OR name LIKE ? ESCAPE '\\') ORDER BY name LIMIT ?", (like, "% " + like, limit))]


def _albums(conn: sqlite3.Connection, prefix: str, limit: int) -> list[tuple[str, int | None]]:
    like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return [(r[0], None) for r in conn.execute(
        "SELECT title FROM albums WHERE title LIKE ? ESCAPE '\\' ORDER BY title LIMIT ?", (like, limit))]


def _cities(conn: sqlite3.Connection, prefix: str, limit: int) -> list[tuple[str, int | None]]:
    lo, hi = _prefix_range(prefix)
    return [(r[0], None) for r in conn.execute(
        "SELECT DISTINCT city FROM photos INDEXED BY photos_city WHERE city IS NOT NULL"
        " AND city >= ? COLLATE NOCASE AND city < ? COLLATE NOCASE ORDER BY city COLLATE NOCASE LIMIT ?",
        (lo, hi, limit))]


def _countries(conn: sqlite3.Connection, prefix: str, limit: int) -> list[tuple[str, int | None]]:
    import pycountry  # the same names the country: filter understands

    low = prefix.lower()
    present = {str(r[0]).lower() for r in conn.execute(
        "SELECT DISTINCT country_code FROM photos WHERE country_code IS NOT NULL")}
    names = sorted(c.name for c in pycountry.countries
                   if c.alpha_2.lower() in present and c.name.lower().startswith(low))
    return [(n, None) for n in names[:limit]]


def _cameras(conn: sqlite3.Connection, prefix: str, limit: int) -> list[tuple[str, int | None]]:
    lo, hi = _prefix_range(prefix)
    return [(r[0], None) for r in conn.execute(
        "SELECT DISTINCT model FROM photos INDEXED BY photos_model WHERE model IS NOT NULL"
        " AND model >= ? COLLATE NOCASE AND model < ? COLLATE NOCASE ORDER BY model COLLATE NOCASE LIMIT ?",
        (lo, hi, limit))]


SOURCES = {"label": _labels, "person": _people, "album": _albums, "city": _cities,
           "country": _countries, "camera": _cameras}


def suggest(conn: sqlite3.Connection, word: str, limit: int = 10) -> list[dict[str, Any]]:
    """Completions of the word being typed, each with the text that replaces it in the box."""
    word = word.lstrip("-")
    key, colon, value = word.partition(":")
    out: list[dict[str, Any]] = []
    if colon:
        name = ALIASES.get(key.lower(), key.lower())
        source = SOURCES.get(name)
        if source is None:
            return []
        value = value.strip('"\'')
        for text, count in source(conn, value, limit):
            out.append({"kind": VALUE_FILTERS.get(name, name), "value": text,
                        "insert": f"{key}:{_quoted(text)}", "count": count})
        return out[:limit]
    low = word.lower()
    if not low:
        return []
    for name, definition in FILTERS.items():
        if name.startswith(low):
            out.append({"kind": "filter", "value": name, "insert": f"{name}:", "count": None,
                        "help": definition.help})
    for name in ("label", "person", "album", "city", "country", "camera"):
        if len(out) >= limit:
            break
        for text, count in SOURCES[name](conn, word, limit - len(out)):
            out.append({"kind": VALUE_FILTERS[name], "value": text, "insert": f"{name}:{_quoted(text)}",
                        "count": count})
    return out[:limit]

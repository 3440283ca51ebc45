"""Running a search: one page of photos, the cursor to the next, and facet counts on request."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Iterator

from daemon.search.compiler import Compiled, Viewer, compile
from daemon.search.cursor import Cursor, decode_cursor
from daemon.search.errors import QueryTooExpensive, SearchError
from daemon.search.functions import ensure_functions
from daemon.search.parser import parse
from daemon.store.deadlines import deadline, deadline_passed

MAX_LIMIT = 1000
#: How long a page may walk the order's index before the planner's own plan is tried instead.
ORDERED_SCAN_BUDGET_S = 0.02
#: Values per facet, most frequent first.
FACET_SIZE = 50

# name -> (value expression, extra joins, group by)
FACETS: dict[str, tuple[str, str, str]] = {
    "year": ("substr(p.taken_at, 1, 4)", "", "1"),
    "month": ("substr(p.taken_at, 1, 7)", "", "1"),
    "country": ("p.country_code", "", "1"),
    "city": ("p.city", "", "1"),
    "camera": ("trim(coalesce(p.make, '') || ' ' || coalesce(p.model, ''))", "", "1"),
    "lens": ("p.lens", "", "1"),
    "color": ("p.main_color", "", "1"),
    "type": ("p.type", "", "1"),
    "label": ("l.name", " JOIN photo_labels AS fpl ON fpl.photo_id = p.id AND fpl.removed = 0"
              " JOIN labels AS l ON l.id = fpl.label_id AND l.hidden = 0", "l.id"),
    "person": ("pe.name", " JOIN (SELECT DISTINCT photo_id, person_id FROM faces WHERE hidden = 0"
               " AND person_id IS NOT NULL) AS fpf ON fpf.photo_id = p.id JOIN people AS pe ON pe.id = fpf.person_id",
               "pe.id"),
}


@dataclass
class SearchPage:
    ids: list[int]
    uids: list[str]
    next_cursor: str | None
    order: str  # the order used ("relevance" without free text falls back to "newest")
    facets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    total: int | None = None


def search(conn: sqlite3.Connection, q: str, *, order: str = "newest", limit: int = 60, cursor: str | None = None,
           facets: Iterable[str] = (), viewer: Viewer | None = None, now: datetime | None = None,
           count: bool = False) -> SearchPage:
    """One page of `q`. Pass `next_cursor` back as `cursor` for the next page: every matching photo
    comes exactly once across pages, in every order (random included: the cursor keeps its seed).

    The whole search (page, facets, count) runs within the connection's `query_budget` (set by
    the store from `[search] max_seconds`); past it SQLite is interrupted and QueryTooExpensive
    (a 400) says so. That bounds what one query can take from the reader (or the writer) it runs
    on, whatever the library's size and however the query is built."""
    with within_budget(conn):
        return _search(conn, q, order=order, limit=limit, cursor=cursor, facets=facets, viewer=viewer, now=now,
                       count=count)


@contextmanager
def within_budget(conn: sqlite3.Connection) -> Iterator[None]:
    """Run the block within the connection's `query_budget` (none on a connection without one);
    past it SQLite is interrupted and QueryTooExpensive is raised. For any code that runs
    compiled queries itself rather than through search()."""
    budget = getattr(conn, "query_budget", None)
    with deadline(conn, budget) if budget else nullcontext():
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc) and deadline_passed(conn):
                raise QueryTooExpensive(
                    f"query too expensive: it needs more than the {budget:g} s a search may take; narrow it"
                    " (fewer alternatives or prefix words*, a date range, fewer facets)", key="q") from None
            raise


def _search(conn: sqlite3.Connection, q: str, *, order: str, limit: int, cursor: str | None, facets: Iterable[str],
            viewer: Viewer | None, now: datetime | None, count: bool) -> SearchPage:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise SearchError(f"bad limit {limit!r} (expected 1 to {MAX_LIMIT})", key="limit", value=str(limit))
    wanted = list(dict.fromkeys(facets))
    for name in wanted:
        if name not in FACETS:
            raise SearchError(f"unknown facet {name!r} (expected one of {', '.join(FACETS)})", key="facets", value=name)
    ensure_functions(conn)
    query = parse(q)
    start: Cursor | None = decode_cursor(cursor) if cursor is not None else None
    compiled = compile(query, order=order, now=now, viewer=viewer, conn=conn, seed=start.seed if start else None)
    if start is not None and (start.order != compiled.order or start.fingerprint != compiled.fingerprint
                              or not 0 <= start.segment < len(compiled.segments)):
        raise SearchError("bad cursor: it belongs to another query or order (start again from the first page)",
                          key="cursor")

    rows: list[tuple[Any, ...]] = []
    segment = start.segment if start else 0
    after = start.keys if start else None
    more = False
    last_segment = segment
    while segment < len(compiled.segments):
        want = limit - len(rows) + 1
        got = _page(conn, compiled, segment, after, want)
        take = got[: limit - len(rows)]
        rows.extend(r + (segment,) for r in take)
        if len(got) > len(take):
            more = True
            break
        segment, after = segment + 1, None
        if len(rows) >= limit:
            # full page at a segment's end: more only if a later segment has a row
            more = any(_has_rows(conn, compiled, s) for s in range(segment, len(compiled.segments)))
            break
    next_cursor = None
    if more and rows:
        last = rows[-1]
        last_segment = last[-1]
        nkeys = len(compiled.segments[last_segment].keys)
        next_cursor = Cursor(order=compiled.order, segment=last_segment, keys=tuple(last[2:2 + nkeys]),
                             fingerprint=compiled.fingerprint, seed=compiled.seed).encode()
    page = SearchPage(ids=[int(r[0]) for r in rows], uids=[str(r[1]) for r in rows], next_cursor=next_cursor,
                      order=compiled.order)
    for name in wanted:
        page.facets[name] = facet_counts(conn, compiled, name)
    if count:
        page.total = int(conn.execute(f"SELECT count(*) FROM {compiled.source} WHERE {compiled.where}",
                                      compiled.params).fetchone()[0])
    return page


def _page(conn: sqlite3.Connection, compiled: Compiled, segment: int, after: tuple[Any, ...] | None,
          want: int) -> list[tuple[Any, ...]]:
    """One segment's rows, by the faster of two plans.

    SQLite's planner, given a filter that an index can answer (a label, a place, a camera), finds
    every matching photo and sorts them: fast when few match, slow when a third of a million
    photos are in the home town. Walking the date index newest-first and testing each photo is
    the opposite: a page of a common filter is found after a few hundred rows, a rare one only
    after most of the library. Which one wins cannot be known before running, so the walk gets a
    small time budget (SQLite's progress handler interrupts it) and the planner's plan runs only
    when the walk did not finish in time: broad filters cost a few ms, rare ones budget + little."""
    if compiled.segments[segment].index and compiled.has_filters:
        sql, params = compiled.page_sql(segment, after, want, ordered_scan=True)
        with deadline(conn, ORDERED_SCAN_BUDGET_S) as walk_over:
            try:
                return [tuple(r) for r in conn.execute(sql, params).fetchall()]
            except sqlite3.OperationalError as exc:
                if "interrupted" not in str(exc) or not walk_over():
                    raise
        if deadline_passed(conn):  # the query's own budget ran out with the walk's: give up
            raise sqlite3.OperationalError("interrupted")
    sql, params = compiled.page_sql(segment, after, want)
    return [tuple(r) for r in conn.execute(sql, params).fetchall()]


def _has_rows(conn: sqlite3.Connection, compiled: Compiled, segment: int) -> bool:
    seg = compiled.segments[segment]
    where = " AND ".join(c for c in (compiled.where, seg.where) if c)
    return conn.execute(f"SELECT 1 FROM {compiled.source} WHERE {where} LIMIT 1", compiled.params).fetchone() is not None


def facet_counts(conn: sqlite3.Connection, compiled: Compiled, name: str) -> list[dict[str, Any]]:
    """How many matching photos have each value of a facet, most first (photos without one are left out)."""
    expr, joins, group = FACETS[name]
    sql = (f"SELECT {expr} AS value, count(*) AS n FROM {compiled.source}{joins} WHERE {compiled.where}"
           f" AND {expr} IS NOT NULL AND {expr} != '' GROUP BY {group} ORDER BY n DESC, value LIMIT {FACET_SIZE}")
    return [{"value": r[0], "count": int(r[1])} for r in conn.execute(sql, compiled.params)]

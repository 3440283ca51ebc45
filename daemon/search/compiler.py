"""Query tree → parameterised SQL over `photos AS p`: a WHERE clause, a row source and the sort.

Sorting is keyset-paginated. An order is a list of segments (e.g. "newest": dated photos by
taken_at then id, newest first; then undated photos by id), each sorted by keys that end with
p.id so every row has a distinct position; a page continues after the last row's keys, which
SQLite turns into an index seek for the date orders (so page 500 costs what page 1 costs).

Results are photos with a primary file; archived and private photos only when a filter asks for
them (`archived:yes`, `private:yes`), and never for a viewer that may not see them. Offline
photos are results: their files come back.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from daemon.search.errors import QueryTooExpensive, SearchError
from daemon.search.filters import FILTERS, NEAR_DEFAULT_KM, Near
from daemon.search.functions import ensure_functions
from daemon.search.parser import Query, parse
from daemon.search.text import fold, fts_phrase

ORDERS = ("newest", "oldest", "added", "relevance", "random", "similar")

#: bm25 weights for photos_fts columns: title, description, keywords, labels, people, places, files, camera.
BM25_WEIGHTS = (8.0, 3.0, 6.0, 4.0, 8.0, 5.0, 2.0, 2.0)

#: Smart albums may refer to other albums (`album:` in their query): this deep and no deeper (a
#: loop back to an album being expanded adds nothing), at most this many smart albums expanded
#: in one query however they fan out, and at most this many terms (words, values and their
#: alternatives) in one query with every expansion counted. Without the last two a chain of
#: albums that each name a few others multiplies: 5 albums of 5 would be 3,125 subqueries.
MAX_ALBUM_DEPTH = 3
MAX_ALBUM_EXPANSIONS = 16
MAX_COMPILED_TERMS = 256
#: Prefix words (bea*) in one query, expansions included: each one is a range scan of the
#: full-text index, and one-letter prefixes match most of it.
MAX_PREFIXES = 8


@dataclass(frozen=True)
class Viewer:
    """What the person searching may see. The default (None in compile) is the library's owner.

    A share link is `Viewer(private=False, archived=False, album_ids=(7,))`; a shared selection
    `Viewer(private=False, archived=False, photo_ids=(...))`.
    """

    private: bool = True
    archived: bool = True
    album_ids: tuple[int, ...] | None = None
    photo_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Segment:
    """Part of an order: rows matching `where`, sorted by `keys` ((sql, 'ASC'|'DESC'), ..., p.id last)."""

    where: str
    keys: tuple[tuple[str, str], ...]
    index: str | None = None  # an index that yields rows already in this order


@dataclass
class Compiled:
    where: str
    where_probe: str  # the same conditions, tested photo by photo (for a walk of the order's index)
    params: dict[str, Any]
    source: str  # the FROM clause
    order: str  # the order actually used ("relevance" without free text is "newest")
    segments: tuple[Segment, ...]
    fingerprint: str
    seed: int | None = None
    has_filters: bool = False  # anything beyond the defaults (the order index alone answers those)

    def page_sql(self, segment: int, after: tuple[Any, ...] | None, limit: int, *,
                 ordered_scan: bool = False) -> tuple[str, dict[str, Any]]:
        """SQL for up to `limit` rows of one segment, after the row whose keys are `after`.
        `ordered_scan` walks the segment's order index and tests each row (see engine.search)."""
        seg = self.segments[segment]
        source = self.source
        where = self.where
        if ordered_scan and seg.index and source == "photos AS p":
            source = f"photos AS p INDEXED BY {seg.index}"
            where = self.where_probe
        params = dict(self.params)
        conds = [where, seg.where]
        if after is not None:
            conds.append(_keyset(seg.keys, after, params))
        keys = ", ".join(f"{expr} AS k{i}" for i, (expr, _) in enumerate(seg.keys))
        order = ", ".join(f"{expr} {direction}" for expr, direction in seg.keys)
        params["limit"] = limit
        sql = (f"SELECT p.id, p.uid, {keys} FROM {source} WHERE {' AND '.join(c for c in conds if c)}"
               f" ORDER BY {order} LIMIT :limit")
        return sql, params


def _keyset(keys: tuple[tuple[str, str], ...], after: tuple[Any, ...], params: dict[str, Any]) -> str:
    """Rows strictly after `after` in the lexicographic order of `keys`."""
    if len(after) != len(keys):
        raise SearchError("bad cursor: it does not fit this order (start again from the first page)", key="cursor")
    names = []
    for i, value in enumerate(after):
        if value is None:
            raise SearchError("bad cursor: not a cursor (start again from the first page)", key="cursor")
        names.append(f":after{i}")
        params[f"after{i}"] = value

    def strict(i: int) -> str:
        expr, direction = keys[i]
        op = "<" if direction == "DESC" else ">"
        if i == len(keys) - 1:
            return f"{expr} {op} {names[i]}"
        return f"({expr} {op} {names[i]} OR ({expr} = {names[i]} AND {strict(i + 1)}))"

    first, direction = keys[0]
    if len(keys) == 1:
        return strict(0)
    # the redundant bound on the first key lets SQLite seek in its index instead of scanning
    return f"{first} {'<=' if direction == 'DESC' else '>='} {names[0]} AND {strict(0)}"


@dataclass
class Context:
    """State shared by the filter builders while one query compiles."""

    now_local: datetime
    now_utc: datetime
    conn: sqlite3.Connection | None
    params: dict[str, Any] = field(default_factory=dict)
    near_km: float = NEAR_DEFAULT_KM
    albums_seen: tuple[str, ...] = ()
    ref_phash: tuple[int, str] | None = None
    probe: bool = False  # building the per-photo form of the conditions (see filters._photos_of)
    expansions: int = 0  # smart albums expanded so far (one pass)
    terms: int = 0  # words, values and alternatives compiled so far, expansions included (one pass)
    prefixes: int = 0  # prefix words compiled so far, expansions included (one pass)

    def restart(self) -> None:
        """Before the second pass over the same query (the per-photo form): costs count per pass."""
        self.expansions = self.terms = self.prefixes = 0

    def cost(self, query: Query) -> None:
        """Count one query's terms into the budget; QueryTooExpensive once it is exceeded."""
        self.terms += sum(len(f.values) for f in query.filters) + sum(len(t.alternatives) for t in query.terms)
        self.prefixes += sum(1 for t in query.terms for a in t.alternatives if a.prefix)
        if self.terms > MAX_COMPILED_TERMS:
            raise QueryTooExpensive(f"query too expensive: {self.terms} terms with the smart albums it names expanded"
                                    f" (at most {MAX_COMPILED_TERMS})", key="q")
        if self.prefixes > MAX_PREFIXES:
            raise QueryTooExpensive(f"query too expensive: {self.prefixes} prefix words (word*), smart albums it names"
                                    f" included (at most {MAX_PREFIXES})", key="q")

    def param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def _need_conn(self, what: str) -> sqlite3.Connection:
        if self.conn is None:
            raise SearchError(f"{what} needs the database to look the photo up", key=what.split(":")[0])
        return self.conn

    def _photo(self, key: str, uid: str) -> sqlite3.Row | tuple:
        conn = self._need_conn(f"{key}:<photo>")
        row = conn.execute("SELECT id, lat, lng, phash FROM photos WHERE uid = ?", (uid,)).fetchone()
        if row is None:
            raise SearchError(f"bad value for {key}: no photo {uid!r}", key=key, value=uid)
        return row

    def resolve_near(self, value: Near) -> tuple[float, float]:
        if value.uid is None:
            assert value.lat is not None and value.lng is not None
            return value.lat, value.lng
        row = self._photo("near", value.uid)
        if row[1] is None or row[2] is None:
            raise SearchError(f"bad value for near: photo {value.uid!r} has no location", key="near", value=value.uid)
        if self.ref_phash is None and row[3]:
            self.ref_phash = (int(row[0]), str(row[3]))
        return float(row[1]), float(row[2])

    def resolve_phash(self, uid: str) -> tuple[int, str]:
        row = self._photo("similar", uid)
        if not row[3]:
            raise SearchError(f"bad value for similar: photo {uid!r} has no perceptual hash", key="similar", value=uid)
        self.ref_phash = (int(row[0]), str(row[3]))
        return self.ref_phash

    def album_sql(self, value: str) -> str:
        """Photos of hand-made albums by id or title; a smart album's own query, expanded."""
        if self.conn is None:
            return ("p.id IN (SELECT ap.photo_id FROM album_photos AS ap WHERE ap.album_id IN (SELECT a.id FROM"
                    f" albums AS a WHERE a.uid = {self.param(value)} OR sb_fold(a.title) = {self.param(fold(value))}))")
        rows = self.conn.execute(
            "SELECT id, uid, type, query FROM albums WHERE uid = ? OR sb_fold(title) = ? ORDER BY id",
            (value, fold(value))).fetchall()
        parts = []
        plain = [int(r[0]) for r in rows if r[2] == "album"]
        if plain:
            marks = ", ".join(self.param(i) for i in plain)
            if self.probe:
                parts.append("EXISTS (SELECT 1 FROM album_photos AS ap WHERE ap.photo_id = p.id"
                             f" AND ap.album_id IN ({marks}))")
            else:
                parts.append(f"p.id IN (SELECT ap.photo_id FROM album_photos AS ap WHERE ap.album_id IN ({marks}))")
        for r in rows:
            if r[2] != "smart" or not r[3]:
                continue
            if r[1] in self.albums_seen:
                continue  # a loop: the album is already being expanded, it adds nothing more
            if len(self.albums_seen) >= MAX_ALBUM_DEPTH:
                raise QueryTooExpensive(f"query too expensive: smart albums nested more than {MAX_ALBUM_DEPTH} deep"
                                        f" (album:{value} inside album:{self.albums_seen[-1]})", key="album", value=value)
            self.expansions += 1
            if self.expansions > MAX_ALBUM_EXPANSIONS:
                raise QueryTooExpensive(f"query too expensive: more than {MAX_ALBUM_EXPANSIONS} smart album expansions"
                                        " (smart albums naming other smart albums)", key="album", value=value)
            try:
                inner = parse(r[3])
            except SearchError:
                continue  # a smart album saved with a query this version cannot read matches nothing
            self.cost(inner)
            saved = self.albums_seen
            self.albums_seen = (*saved, r[1])
            try:
                parts.append("(" + " AND ".join(_conditions(inner, self, fts_join=False)[0] or ["1"]) + ")")
            finally:
                self.albums_seen = saved
        return "(" + " OR ".join(parts) + ")" if parts else "0"


def _fts_match(terms: list[Any]) -> str:
    groups = []
    for term in terms:
        alts = [fts_phrase(t.text, prefix=t.prefix) for t in term.alternatives]
        groups.append("(" + " OR ".join(alts) + ")")
    return " AND ".join(groups)


def _conditions(query: Query, ctx: Context, *, fts_join: bool) -> tuple[list[str], str | None]:
    """SQL conditions for the filters and words; and the FTS5 match for relevance, if joined."""
    for f in query.get("dist"):
        if f.negated or len(f.values) != 1:
            raise SearchError("dist takes one distance, not alternatives or a negation", key="dist", value=f.raw)
        if not query.has("near"):
            raise SearchError("dist needs near: (dist:2 near:<photo id> or near:lat,lng)", key="dist", value=f.raw)
        ctx.near_km = float(f.values[0].lo)
    conds: list[str] = []
    for f in query.filters:
        spec = FILTERS[f.key]
        alts = [spec.sql(ctx, v, f) for v in f.values]
        cond = alts[0] if len(alts) == 1 else "(" + " OR ".join(alts) + ")"
        if f.negated:
            cond = f"NOT coalesce({cond}, 0)"
        if cond != "1":
            conds.append(cond)
    positive = [t for t in query.terms if not t.negated]
    match = None
    if positive:
        match = ctx.param(_fts_match(positive))
        if not fts_join:
            conds.append(f"p.id IN (SELECT rowid FROM photos_fts WHERE photos_fts MATCH {match})")
    for t in query.terms:
        if t.negated:
            conds.append(f"p.id NOT IN (SELECT rowid FROM photos_fts WHERE photos_fts MATCH {ctx.param(_fts_match([t]))})")
    return conds, (match if fts_join else None)


def _random_key(seed_param: str) -> str:
    """A seeded bijective 32-bit mix of p.id (multiply, xor-shift, multiply), in plain SQL so that
    sorting a million rows costs no Python calls; distinct ids always get distinct keys."""
    h = f"((p.id * 1597334677 + {seed_param}) & 4294967295)"
    x = f"(({h} | ({h} >> 15)) - ({h} & ({h} >> 15)))"  # xor: SQLite has no ^ operator
    return f"(({x} * 739744411) & 4294967295)"


def fingerprint(q: str, order: str) -> str:
    return hashlib.sha256(f"{order}\x00{q}".encode("utf-8", "surrogatepass")).hexdigest()[:12]


def compile(query: Query, *, order: str = "newest", now: datetime | None = None, viewer: Viewer | None = None,
            conn: sqlite3.Connection | None = None, seed: int | None = None) -> Compiled:
    """Compile a parsed query. `conn` is needed only to look up photos named by near:/similar:
    and to expand smart albums; `seed` fixes the random order (a cursor carries it)."""
    if order not in ORDERS:
        raise SearchError(f"unknown order {order!r} (expected one of {', '.join(ORDERS)})", key="order", value=order)
    now = now or datetime.now(timezone.utc)
    now_utc = now.astimezone(timezone.utc).replace(tzinfo=None) if now.tzinfo else now
    now_local = now.astimezone().replace(tzinfo=None) if now.tzinfo else now
    if conn is not None:
        ensure_functions(conn)
    ctx = Context(now_local=now_local, now_utc=now_utc, conn=conn)
    effective = order
    if order == "relevance" and not query.positive_terms:
        effective = "newest"
    ctx.cost(query)
    conds, match = _conditions(query, ctx, fts_join=effective == "relevance")
    ctx.probe = True
    ctx.restart()
    ctx.cost(query)
    probe_conds, _ = _conditions(query, ctx, fts_join=effective == "relevance")
    ctx.probe = False

    base = ["p.primary_file_id IS NOT NULL"]
    viewer = viewer or Viewer()
    if not query.has("archived"):
        base.append("p.archived = 0")
    if not query.has("private"):
        base.append("p.private = 0")
    if not viewer.archived:
        base.append("p.archived = 0")
    if not viewer.private:
        base.append("p.private = 0")
    if viewer.album_ids is not None:
        ids = ctx.param(",".join(str(int(i)) for i in viewer.album_ids))
        base.append("p.id IN (SELECT ap.photo_id FROM album_photos AS ap WHERE ap.album_id IN"
                    f" (SELECT CAST(value AS INTEGER) FROM json_each('[' || {ids} || ']')))")
    if viewer.photo_ids is not None:
        ids = ctx.param(",".join(str(int(i)) for i in viewer.photo_ids))
        base.append(f"p.id IN (SELECT CAST(value AS INTEGER) FROM json_each('[' || {ids} || ']'))")

    source = "photos AS p"
    id_desc, id_asc = ("p.id", "DESC"), ("p.id", "ASC")
    if effective in ("newest", "oldest"):
        d = "DESC" if effective == "newest" else "ASC"
        segments = (Segment("p.taken_at IS NOT NULL", (("p.taken_at", d), ("p.id", d)), "photos_taken"),
                    Segment("p.taken_at IS NULL", (("p.id", d),)))
    elif effective == "added":
        segments = (Segment("", (("p.added_at", "DESC"), id_desc), "photos_added"),)
    elif effective == "relevance":
        weights = ", ".join(str(w) for w in BM25_WEIGHTS)
        source = (f"photos AS p JOIN (SELECT rowid AS id, bm25(photos_fts, {weights}) AS score FROM photos_fts"
                  f" WHERE photos_fts MATCH {match}) AS fts ON fts.id = p.id")
        segments = (Segment("", (("fts.score", "ASC"), id_asc)),)
    elif effective == "random":
        seed = secrets.randbelow(1 << 31) if seed is None else int(seed) & 0x7FFFFFFF
        segments = (Segment("", ((_random_key(ctx.param(seed)), "ASC"), id_asc)),)
    else:  # similar
        if ctx.ref_phash is None:
            raise SearchError("order similar needs similar:<photo id> or near:<photo id> with a perceptual hash",
                              key="order", value=order)
        ref = ctx.param(ctx.ref_phash[1])
        segments = (Segment("p.phash IS NOT NULL", ((f"sb_hamming(p.phash, {ref})", "ASC"), id_asc)),)
    return Compiled(where=" AND ".join(base + conds), where_probe=" AND ".join(base + probe_conds), params=ctx.params, source=source, order=effective,
                    segments=segments, fingerprint=fingerprint(query.text, effective),
                    seed=seed if effective == "random" else None, has_filters=bool(conds) or len(base) > 3)

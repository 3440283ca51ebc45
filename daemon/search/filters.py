"""The filters of the search language: what each key accepts and the SQL it becomes.

Every filter is one entry in FILTERS: a value parser (run by the parser, so bad values are
reported before any SQL exists) and an SQL builder for ONE alternative of the value; the
compiler ORs the alternatives, ANDs the filters and wraps negated ones in NOT. Builders only
ever put user values into bound parameters through `ctx.param()`: the SQL text itself is made
of our own fragments, which is what makes injection through the language impossible.

SQL runs against `photos AS p`. Text filters on places, titles and cameras use the FTS5 index
to find candidates fast, then compare folded text exactly (sb_fold, registered by
daemon.search.functions), so `city:zurich` finds Zürich but `city:york` does not find New York.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

import pycountry

from daemon.library.palette import NAMES as COLOR_NAMES
from daemon.places.geonames import COUNTRY_NAMES, country_name
from daemon.places.index import bounding_boxes
from daemon.search.errors import SearchError
from daemon.search.text import fold, fts_column, glob_escape, like_escape
from daemon.search.values import (DateRange, DateSpec, Near, Range, parse_bool, parse_date, parse_date_range,
                                  parse_near, parse_range, parse_uid)

if TYPE_CHECKING:
    from daemon.search.compiler import Context

#: Default radius of near: (km) when no dist: is given.
NEAR_DEFAULT_KM = 5.0
#: similar:<photo> keeps photos whose perceptual hashes differ in at most this many of 64 bits.
SIMILAR_MAX_BITS = 12

Builder = Callable[["Context", Any, "Filterish"], str]


class Filterish:  # pragma: no cover - typing aid: the parser's Filter
    key: str
    raw: str


@dataclass(frozen=True)
class FilterDef:
    parse: Callable[[str, str], Any]
    sql: Builder
    help: str


def _text(key: str, text: str) -> str:
    value = " ".join(text.split())
    if len(value) > 200:
        raise SearchError(f"bad value for {key}: too long (at most 200 characters)", key=key, value=text[:200])
    return value


# -- builders ------------------------------------------------------------------------------------

def _fts(ctx: "Context", column: str, texts: list[str]) -> str:
    return f"p.id IN (SELECT rowid FROM photos_fts WHERE photos_fts MATCH {ctx.param(fts_column(column, texts))})"


def _range_sql(ctx: "Context", expr: str, r: Range) -> str:
    parts = [f"{expr} IS NOT NULL"]
    if r.lo is not None:
        parts.append(f"{expr} >= {ctx.param(r.lo)}")
    if r.hi is not None:
        parts.append(f"{expr} <= {ctx.param(r.hi)}")
    return "(" + " AND ".join(parts) + ")"


def _bool_column(column: str) -> Builder:
    def build(ctx: "Context", value: bool, f: Any) -> str:
        return f"p.{column} = 1" if value else f"coalesce(p.{column}, 0) = 0"
    return build


def _type_is(kind: str) -> Builder:
    def build(ctx: "Context", value: bool, f: Any) -> str:
        return f"p.type = '{kind}'" if value else f"p.type != '{kind}'"
    return build


def _shape_is(shape: str) -> Builder:
    def build(ctx: "Context", value: bool, f: Any) -> str:
        return f"p.shape = '{shape}'" if value else f"p.shape IS NOT '{shape}'"
    return build


def _numeric(expr: str) -> Builder:
    def build(ctx: "Context", value: Range, f: Any) -> str:
        return _range_sql(ctx, expr, value)
    return build


def _photos_of(ctx: "Context", table: str, alias: str, where: str) -> str:
    """Photos with a row in `table`: a set to drive the query from, or a per-photo probe when the
    engine walks the date index (ctx.probe), so no set of a million ids is built for one page."""
    if ctx.probe:
        return f"EXISTS (SELECT 1 FROM {table} AS {alias} WHERE {alias}.photo_id = p.id AND {where})"
    return f"p.id IN (SELECT {alias}.photo_id FROM {table} AS {alias} WHERE {where})"


def _label(ctx: "Context", value: str, f: Any) -> str:
    v = ctx.param(fold(value))
    return _photos_of(ctx, "photo_labels", "pl", "pl.removed = 0 AND pl.label_id IN ("
                      f"SELECT l.id FROM labels AS l WHERE sb_fold(l.name) = {v} OR EXISTS (SELECT 1 FROM json_each("
                      f"CASE WHEN json_valid(l.categories) THEN l.categories ELSE '[]' END) AS c"
                      f" WHERE sb_fold(c.value) = {v}))")


def _keyword(ctx: "Context", value: str, f: Any) -> str:
    v = ctx.param(fold(value))
    exact = (f"EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(p.keywords) THEN p.keywords ELSE '[]' END) AS k"
             f" WHERE sb_fold(k.value) = {v})")
    return exact if ctx.probe else f"({_fts(ctx, 'keywords', [value])} AND {exact})"


def _person(ctx: "Context", value: str, f: Any) -> str:
    folded = fold(value) or ""
    return _photos_of(ctx, "faces", "fa", "fa.hidden = 0 AND fa.person_id IN ("
                      f"SELECT pe.id FROM people AS pe WHERE pe.uid = {ctx.param(value)}"
                      f" OR sb_fold(pe.name) = {ctx.param(folded)}"
                      f" OR sb_fold(pe.name) LIKE {ctx.param(like_escape(folded) + ' %')} ESCAPE '\\')")


def _face(ctx: "Context", value: str, f: Any) -> str:
    if value == "new":
        return ("EXISTS (SELECT 1 FROM faces AS fa WHERE fa.photo_id = p.id AND fa.hidden = 0"
                " AND fa.person_id IS NULL)")
    has = "EXISTS (SELECT 1 FROM faces AS fa WHERE fa.photo_id = p.id AND fa.hidden = 0)"
    return has if value == "yes" else f"NOT {has}"


def _parse_face(key: str, text: str) -> str:
    if text.strip().lower() == "new":
        return "new"
    try:
        return "yes" if parse_bool(key, text) else "no"
    except SearchError:
        raise SearchError(f"bad value for {key}: {text!r} (expected yes, no or new)", key=key, value=text) from None


def _faces(ctx: "Context", value: Range, f: Any) -> str:
    return _range_sql(ctx, "(SELECT count(*) FROM faces AS fa WHERE fa.photo_id = p.id AND fa.hidden = 0)", value)


def _album(ctx: "Context", value: str, f: Any) -> str:
    return ctx.album_sql(value)


def _country_codes() -> dict[str, str]:
    """Folded country name (official, common and ours) → ISO code."""
    names: dict[str, str] = {}
    for c in pycountry.countries:
        for attr in ("name", "common_name", "official_name"):
            n = getattr(c, attr, None)
            if n:
                names[fold(n) or ""] = c.alpha_2
    for code in COUNTRY_NAMES:
        names[fold(country_name(code)) or ""] = code
    names.update({"usa": "US", "america": "US", "uk": "GB", "england": "GB", "great britain": "GB", "holland": "NL"})
    return names


_COUNTRIES = _country_codes()


def _parse_country(key: str, text: str) -> tuple[str, str]:
    """('code', 'IT') when the value names a known country, else ('name', folded text)."""
    value = _text(key, text)
    if len(value) == 2 and value.isalpha():
        return ("code", value.upper())
    code = _COUNTRIES.get(fold(value) or "")
    return ("code", code) if code else ("name", value)


def _country(ctx: "Context", value: tuple[str, str], f: Any) -> str:
    kind, v = value
    if kind == "code":
        return f"p.country_code = {ctx.param(v)}"
    exact = f"sb_fold(p.country) = {ctx.param(fold(v))}"
    return exact if ctx.probe else f"({_fts(ctx, 'places', [v])} AND {exact})"


def _place(column: str) -> Builder:
    def build(ctx: "Context", value: str, f: Any) -> str:
        exact = f"sb_fold(p.{column}) = {ctx.param(fold(value))}"
        return exact if ctx.probe else f"({_fts(ctx, 'places', [value])} AND {exact})"
    return build


def _taken_between(ctx: "Context", lo: str | None, hi: str | None) -> str:
    parts = ["p.taken_at IS NOT NULL"]
    if lo is not None:
        parts.append(f"p.taken_at >= {ctx.param(lo)}")
    if hi is not None:
        parts.append(f"p.taken_at < {ctx.param(hi)}")
    return "(" + " AND ".join(parts) + ")"


def _local(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%S")


def _year(ctx: "Context", value: Range, f: Any) -> str:
    lo = f"{int(value.lo):04d}" if value.lo is not None else None
    hi = f"{int(value.hi) + 1:04d}" if value.hi is not None else None
    return _taken_between(ctx, lo, hi)


def _part(start: int) -> Builder:
    def build(ctx: "Context", value: Range, f: Any) -> str:
        return _range_sql(ctx, f"CAST(substr(p.taken_at, {start}, 2) AS INTEGER)", value)
    return build


def _before(ctx: "Context", value: DateSpec, f: Any) -> str:
    return _taken_between(ctx, None, _local(value.span(ctx.now_local)[0]))


def _after(ctx: "Context", value: DateSpec, f: Any) -> str:
    return _taken_between(ctx, _local(value.span(ctx.now_local)[0]), None)


def _taken(ctx: "Context", value: DateRange, f: Any) -> str:
    lo, hi = value.bounds(ctx.now_local)
    return _taken_between(ctx, _local(lo) if lo else None, _local(hi) if hi else None)


def _added(ctx: "Context", value: DateRange, f: Any) -> str:
    lo, hi = value.bounds(ctx.now_utc)
    parts = []
    if lo is not None:
        parts.append(f"p.added_at >= {ctx.param(lo.strftime('%Y-%m-%dT%H:%M:%SZ'))}")
    if hi is not None:
        parts.append(f"p.added_at < {ctx.param(hi.strftime('%Y-%m-%dT%H:%M:%SZ'))}")
    return "(" + " AND ".join(parts) + ")"


def _camera(ctx: "Context", value: str, f: Any) -> str:
    pattern = "%" + like_escape(value) + "%"
    exact = f"(coalesce(p.make, '') || ' ' || coalesce(p.model, '')) LIKE {ctx.param(pattern)} ESCAPE '\\'"
    return exact if ctx.probe else f"({_fts(ctx, 'camera', [value])} AND {exact})"


def _lens(ctx: "Context", value: str, f: Any) -> str:
    # part of a word matters here ("24-70" in "EF24-70mm"), so no word index: a scan, still cheap
    return f"p.lens LIKE {ctx.param('%' + like_escape(value) + '%')} ESCAPE '\\'"


def _parse_color(key: str, text: str) -> str:
    v = text.strip().lower()
    v = {"gray": "grey", "violet": "purple"}.get(v, v)
    if v not in COLOR_NAMES:
        raise SearchError(f"bad value for {key}: {text!r} (expected one of {', '.join(COLOR_NAMES)})", key=key, value=text)
    return v


def _color(ctx: "Context", value: str, f: Any) -> str:
    return f"p.main_color = {ctx.param(value)}"


_TYPES = ("image", "raw", "video", "live", "animated")


def _parse_type(key: str, text: str) -> str:
    v = text.strip().lower()
    v = {"photo": "image", "movie": "video", "gif": "animated"}.get(v, v)
    if v not in _TYPES:
        raise SearchError(f"bad value for {key}: {text!r} (expected one of {', '.join(_TYPES)})", key=key, value=text)
    return v


def _type(ctx: "Context", value: str, f: Any) -> str:
    return f"p.type = {ctx.param(value)}"


def _raw(ctx: "Context", value: bool, f: Any) -> str:
    has = "(p.type = 'raw' OR EXISTS (SELECT 1 FROM files AS fi WHERE fi.photo_id = p.id AND fi.kind = 'raw'))"
    return has if value else f"NOT {has}"


def _stack(ctx: "Context", value: bool, f: Any) -> str:
    media = ("(SELECT count(*) FROM files AS fi WHERE fi.photo_id = p.id AND fi.kind != 'sidecar'"
             " AND fi.state = 'indexed')")
    return f"{media} > 1" if value else f"{media} <= 1"


def _parse_folder(key: str, text: str) -> bytes:
    value = text.strip().strip("/")
    if not value:
        raise SearchError(f"bad value for {key}: {text!r} (expected a folder inside the library, like 2008/Italy)",
                          key=key, value=text)
    if any(part == ".." for part in value.split("/")):
        raise SearchError(f"bad value for {key}: {text!r} (a folder inside the library may not contain ..)",
                          key=key, value=text)
    return os.fsencode(value)


def _folder(ctx: "Context", value: bytes, f: Any) -> str:
    # files.dir is raw bytes: compare bytes. 'a' itself, or anything under 'a/' ('/' + 1 is '0').
    exact, lo, hi = ctx.param(value), ctx.param(value + b"/"), ctx.param(value + b"0")
    if ctx.probe:
        return _photos_of(ctx, "files", "fi", f"(fi.dir = {exact} OR (fi.dir >= {lo} AND fi.dir < {hi}))")
    return (f"p.id IN (SELECT fi.photo_id FROM files AS fi WHERE fi.dir = {exact}"
            f" UNION ALL SELECT fi.photo_id FROM files AS fi WHERE fi.dir >= {lo} AND fi.dir < {hi})")


def _parse_filename(key: str, text: str) -> str:
    value = text.strip()
    if not value or "/" in value:
        raise SearchError(f"bad value for {key}: {text!r} (expected a file name, * and ? as wildcards)",
                          key=key, value=text)
    return value


def _filename(ctx: "Context", value: str, f: Any) -> str:
    name = value.lower()
    if "*" in name or "?" in name:
        pattern = glob_escape(name)
        return (f"p.id IN (SELECT fi.photo_id FROM files AS fi WHERE lower(fi.path_text) GLOB {ctx.param('*/' + pattern)}"
                f" OR lower(fi.path_text) GLOB {ctx.param(pattern)})")
    base, dot, _ = name.rpartition(".")
    stem = base if dot and base else name
    stems = [stem] if stem == name else [stem, name]  # 'x.jpg' may also be the stem of 'x.jpg.xmp'
    marks = ", ".join(ctx.param(s) for s in stems)
    return (f"p.id IN (SELECT fi.photo_id FROM files AS fi WHERE fi.stem IN ({marks}) AND (lower(fi.path_text) ="
            f" {ctx.param(name)} OR lower(fi.path_text) LIKE {ctx.param('%/' + like_escape(name))} ESCAPE '\\'"
            f" OR fi.stem = {ctx.param(name)}))")


def _words_in(column: str) -> Builder:
    def build(ctx: "Context", value: str, f: Any) -> str:
        return _fts(ctx, column, [value])
    return build


def _near(ctx: "Context", value: Near, f: Any) -> str:
    lat, lng = ctx.resolve_near(value)
    km = ctx.near_km
    boxes = " OR ".join(
        f"(p.lat BETWEEN {ctx.param(a)} AND {ctx.param(b)} AND p.lng BETWEEN {ctx.param(c)} AND {ctx.param(d)})"
        for a, b, c, d in bounding_boxes(lat, lng, km))
    return (f"(p.lat IS NOT NULL AND ({boxes}) AND sb_km(p.lat, p.lng, {ctx.param(lat)}, {ctx.param(lng)})"
            f" <= {ctx.param(km)})")


def _dist(ctx: "Context", value: Range, f: Any) -> str:
    return "1"  # read by near:


def _parse_dist(key: str, text: str) -> Range:
    r = parse_range(key, text, unit="km", example="5 (km)", lo_limit=0, hi_limit=20040)
    if r.lo is None or r.lo != r.hi:
        raise SearchError(f"bad value for {key}: {text!r} (expected one distance in km, like 2 or 0.5)", key=key, value=text)
    return r


def _similar(ctx: "Context", value: str, f: Any) -> str:
    ref_id, ref_hash = ctx.resolve_phash(value)
    return (f"(p.phash IS NOT NULL AND p.id != {ctx.param(ref_id)}"
            f" AND sb_hamming(p.phash, {ctx.param(ref_hash)}) <= {SIMILAR_MAX_BITS})")


def _rng(example: str, **kw: Any) -> Callable[[str, str], Range]:
    return lambda key, text: parse_range(key, text, example=example, **kw)


FILTERS: dict[str, FilterDef] = {
    "label": FilterDef(_text, _label, "a label or label category: label:cat, label:animal"),
    "keyword": FilterDef(_text, _keyword, "a keyword from the photo's metadata"),
    "person": FilterDef(_text, _person, "a named person (full name, first name or id)"),
    "face": FilterDef(_parse_face, _face, "yes: shows faces; no: none; new: a face nobody is named for"),
    "faces": FilterDef(_rng("1-3", integer=True, lo_limit=0), _faces, "number of faces, or a range"),
    "album": FilterDef(_text, _album, "an album's id or title (smart albums too)"),
    "country": FilterDef(_parse_country, _country, "country code (it) or name (Italy)"),
    "state": FilterDef(_text, _place("region"), "state, region or province"),
    "city": FilterDef(_text, _place("city"), "city or town"),
    "year": FilterDef(_rng("2005-2010", integer=True, lo_limit=1, hi_limit=9998), _year, "year taken, or a range"),
    "month": FilterDef(_rng("6-8", integer=True, lo_limit=1, hi_limit=12), _part(6), "month taken (1-12), any year"),
    "day": FilterDef(_rng("1-15", integer=True, lo_limit=1, hi_limit=31), _part(9), "day of the month taken"),
    "before": FilterDef(parse_date, _before, "taken before this date"),
    "after": FilterDef(parse_date, _after, "taken on or after this date"),
    "taken": FilterDef(parse_date_range, _taken, "taken on a date or in a date range (a..b)"),
    "added": FilterDef(parse_date_range, _added, "added to the library on a date, in a range (a..b) or in the last 30d"),
    "camera": FilterDef(_text, _camera, "camera make or model"),
    "lens": FilterDef(_text, _lens, "lens model"),
    "iso": FilterDef(_rng("100-400", lo_limit=0), _numeric("p.iso"), "ISO speed, or a range"),
    "f": FilterDef(_rng("1.8-4", prefix="f/", lo_limit=0), _numeric("p.f_number"), "aperture f-number, or a range"),
    "mm": FilterDef(_rng("24-70", unit="mm", lo_limit=0), _numeric("coalesce(p.focal_length_35, p.focal_length)"),
                    "focal length (35 mm equivalent when known), or a range"),
    "color": FilterDef(_parse_color, _color, "main colour: " + ", ".join(COLOR_NAMES)),
    "chroma": FilterDef(_rng("10-50", lo_limit=0, hi_limit=100), _numeric("p.chroma"), "colourfulness 0-100"),
    "mono": FilterDef(parse_bool, _bool_column("mono"), "black and white or toned"),
    "panorama": FilterDef(parse_bool, _shape_is("panorama"), "very wide or tall"),
    "portrait": FilterDef(parse_bool, _shape_is("portrait"), "taller than wide"),
    "landscape": FilterDef(parse_bool, _shape_is("landscape"), "wider than tall"),
    "square": FilterDef(parse_bool, _shape_is("square"), "about square"),
    "mp": FilterDef(_rng("12-", lo_limit=0), _numeric("p.megapixels"), "megapixels, or a range"),
    "quality": FilterDef(_rng("3-", lo_limit=0), _numeric("p.quality"), "quality score, or a range"),
    "rating": FilterDef(_rng("4-5", lo_limit=-1, hi_limit=5), _numeric("p.rating"), "star rating"),
    "review": FilterDef(parse_bool, _bool_column("review"), "flagged for review (low quality)"),
    "favorite": FilterDef(parse_bool, _bool_column("favorite"), "favourites"),
    "private": FilterDef(parse_bool, _bool_column("private"), "private photos (hidden unless asked for)"),
    "archived": FilterDef(parse_bool, _bool_column("archived"), "archived photos (hidden unless asked for)"),
    "offline": FilterDef(parse_bool, _bool_column("offline"), "photos whose files are offline"),
    "live": FilterDef(parse_bool, _type_is("live"), "live photos"),
    "video": FilterDef(parse_bool, _type_is("video"), "videos"),
    "raw": FilterDef(parse_bool, _raw, "RAW photos, alone or with a JPEG"),
    "stack": FilterDef(parse_bool, _stack, "photos made of more than one media file"),
    "type": FilterDef(_parse_type, _type, "image, raw, video, live or animated"),
    "path": FilterDef(_parse_folder, _folder, "folder (and its subfolders) in the library"),
    "filename": FilterDef(_parse_filename, _filename, "file name, * and ? as wildcards"),
    "title": FilterDef(_text, _words_in("title"), "words in the title"),
    "description": FilterDef(_text, _words_in("description"), "words in the description"),
    "near": FilterDef(parse_near, _near, "another photo's id, or lat,lng; with dist:km (default 5)"),
    "dist": FilterDef(_parse_dist, _dist, "radius in km for near:"),
    "similar": FilterDef(parse_uid, _similar, "looks like another photo (perceptual hash)"),
}

ALIASES: dict[str, str] = {
    "subject": "person", "people": "person", "folder": "path", "dir": "path", "favourite": "favorite",
    "fav": "favorite", "colour": "color", "region": "state", "labels": "label", "keywords": "keyword",
    "name": "filename", "file": "filename", "megapixels": "mp", "focal": "mm", "aperture": "f",
}

"""Automatic views of the library, computed on request from the photos themselves: calendar,
places, folders, moments and "on this day".

Nothing here is stored: every answer is a query over columns that already have indexes
(photos.taken_at, files.dir, the place columns), so a view is always current and there is no
second copy to keep in step. Like every normal view (and a search without archived:/private:),
they leave out archived and private photos and photos not yet indexed.

Each node carries `q`, the search-language query that lists its photos through
GET /api/v1/photos, so a client browses from a view into the photos without another API.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterator

from daemon.store.photo_pages import summaries_by_id

VISIBLE = "p.primary_file_id IS NOT NULL AND p.archived = 0 AND p.private = 0"
COVER_ORDER = "p.favorite DESC, coalesce(p.rating, 0) DESC, p.taken_at DESC, p.id DESC"


class ViewError(ValueError):
    """A view asked for with a bad value (`field` names it) or for something that is not there (404)."""

    def __init__(self, message: str, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.field = status, field


def _quote(value: str) -> str | None:
    """A value for the search language, quoted if needed; None if it cannot be written."""
    if '"' in value:
        return None
    return f'"{value}"' if re.search(r"[\s:|()\-]", value) or not value else value


def _covers(conn: sqlite3.Connection, ids: list[int | None]) -> dict[int, dict[str, Any]]:
    found = sorted({i for i in ids if i is not None})
    return dict(zip(found, summaries_by_id(conn, found)))


def _cover_in(conn: sqlite3.Connection, lo: str, hi: str) -> int | None:
    """The photo that stands for a period: a favourite first, then the best rated, then the latest."""
    row = conn.execute(f"SELECT p.id FROM photos p WHERE p.taken_at >= ? AND p.taken_at < ? AND {VISIBLE}"
                       f" ORDER BY {COVER_ORDER} LIMIT 1", (lo, hi)).fetchone()
    return int(row[0]) if row else None


# -- calendar -----------------------------------------------------------------------------------------


def calendar_years(conn: sqlite3.Connection) -> dict[str, Any]:
    """Years with photos, newest first, each with its count and a cover; and how many have no date."""
    rows = conn.execute(f"SELECT substr(p.taken_at, 1, 4) AS year, count(*) AS n FROM photos p"
                        f" WHERE p.taken_at IS NOT NULL AND {VISIBLE} GROUP BY 1 ORDER BY 1 DESC").fetchall()
    years = []
    for r in rows:
        if not re.fullmatch(r"\d{4}", r["year"] or ""):
            continue
        y = int(r["year"])
        years.append({"year": y, "count": int(r["n"]), "cover_id": _cover_in(conn, f"{y:04d}", f"{y + 1:04d}"),
                      "q": f"year:{y}"})
    covers = _covers(conn, [y["cover_id"] for y in years])
    for y in years:
        cover_id = y.pop("cover_id")
        y["cover"] = covers.get(cover_id) if cover_id is not None else None
    undated = conn.execute(f"SELECT count(*) FROM photos p WHERE p.taken_at IS NULL AND {VISIBLE}").fetchone()[0]
    return {"years": years, "undated": int(undated)}


def calendar_months(conn: sqlite3.Connection, year: int) -> dict[str, Any]:
    """The months of a year that have photos, in order, each with its count and a cover photo."""
    lo, hi = f"{year:04d}", f"{year + 1:04d}"
    rows = conn.execute(f"SELECT substr(p.taken_at, 6, 2) AS month, count(*) AS n FROM photos p"
                        f" WHERE p.taken_at >= ? AND p.taken_at < ? AND {VISIBLE} GROUP BY 1 ORDER BY 1",
                        (lo, hi)).fetchall()
    months = []
    for r in rows:
        if not re.fullmatch(r"\d{2}", r["month"] or "") or not 1 <= int(r["month"]) <= 12:
            continue
        m = int(r["month"])
        cover_id = _cover_in(conn, f"{year:04d}-{m:02d}", f"{year:04d}-{m:02d}~")
        cover = summaries_by_id(conn, [cover_id]) if cover_id else []
        months.append({"month": m, "count": int(r["n"]), "cover": cover[0] if cover else None,
                       "q": f"year:{year} month:{m}"})
    if not months:
        raise ViewError(f"no photos taken in {year}", 404)
    return {"year": year, "count": sum(m["count"] for m in months), "months": months}


# -- places -----------------------------------------------------------------------------------------


def places_tree(conn: sqlite3.Connection, country: str | None = None) -> dict[str, Any]:
    """Country → region → city, each with its photo count, largest first. `country` (an ISO code)
    limits the tree to one country."""
    where, params = [VISIBLE, "p.country_code IS NOT NULL"], []
    if country:
        where.append("p.country_code = ?")
        params.append(country.upper())
    rows = conn.execute(
        f"SELECT p.country_code AS cc, max(p.country) AS country, coalesce(p.region, '') AS region,"
        f" coalesce(p.city, '') AS city, count(*) AS n FROM photos p WHERE {' AND '.join(where)}"
        f" GROUP BY p.country_code, coalesce(p.region, ''), coalesce(p.city, '')", params).fetchall()
    countries: dict[str, dict[str, Any]] = {}
    for r in rows:
        c = countries.setdefault(r["cc"], {"country_code": r["cc"], "country": r["country"], "count": 0,
                                           "q": f"country:{r['cc'].lower()}", "regions": {}})
        c["count"] += r["n"]
        if r["country"] and not c["country"]:
            c["country"] = r["country"]
        region = c["regions"].setdefault(r["region"], {"region": r["region"] or None, "count": 0, "cities": []})
        region["count"] += r["n"]
        rq = _quote(r["region"]) if r["region"] else None
        region["q"] = f"{c['q']} state:{rq}" if rq else c["q"]
        if r["city"]:
            cq = _quote(r["city"])
            region["cities"].append({"city": r["city"], "count": int(r["n"]),
                                     "q": f"{region['q']} city:{cq}" if cq else region["q"]})
    out = []
    for c in sorted(countries.values(), key=lambda c: (-c["count"], c["country_code"])):
        regions = sorted(c.pop("regions").values(), key=lambda r: (-r["count"], r["region"] or ""))
        for region in regions:
            region["cities"].sort(key=lambda x: (-x["count"], x["city"]))
        out.append({**c, "regions": regions})
    if country and not out:
        raise ViewError(f"no photos in country {country!r}", 404)
    return {"countries": out, "count": sum(c["count"] for c in out)}


# -- folders ---------------------------------------------------------------------------------------------


def folder_text(raw: bytes) -> str:
    """A folder's raw bytes as readable text (invalid UTF-8 shown as \\xNN, like files.path_text)."""
    return raw.decode("utf-8", "backslashreplace")


_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")


def folder_candidates(text: str) -> list[bytes]:
    """The raw folder names a client's text can mean: its UTF-8 bytes, and (if it has \\xNN
    escapes, as folder_text writes for invalid UTF-8) the bytes those escapes stand for.

    Only ever used as values compared with files.dir in SQL, never to open anything; `..` and
    absolute paths are refused anyway so no answer pretends such a folder could exist."""
    value = text.strip().strip("/")
    if "\x00" in value:
        raise ViewError("a folder name cannot contain a NUL character", field="path")
    if any(part in ("..", ".") for part in value.split("/")) or "//" in value:
        raise ViewError(f"bad folder {text!r}: a folder inside the library, like 2008/Italy (no . or .. parts)",
                        field="path")
    raw = os.fsencode(value)
    out = [raw]
    unescaped = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw)
    if unescaped != raw:
        out.append(unescaped)
    return out


def _folder_counts(conn: sqlite3.Connection, prefix: bytes) -> list[tuple[bytes, int]]:
    cond, params = "1", []
    if prefix:
        cond = "(f.dir = ? OR (f.dir >= ? AND f.dir < ?))"
        params = [prefix, prefix + b"/", prefix + b"0"]
    rows = conn.execute(f"SELECT f.dir, count(DISTINCT f.photo_id) FROM files f JOIN photos p ON p.id = f.photo_id"
                        f" WHERE f.kind != 'sidecar' AND {VISIBLE} AND {cond} GROUP BY f.dir", params).fetchall()
    return [(bytes(r[0]), int(r[1])) for r in rows]


def folders(conn: sqlite3.Connection, path: str = "") -> dict[str, Any]:
    """A folder of the library: how many photos are directly in it and its subfolders, each with
    the number of photos anywhere below it. `path` '' is the library's root."""
    prefix = b""
    counts: list[tuple[bytes, int]] = []
    for candidate in folder_candidates(path) if path.strip().strip("/") else [b""]:
        counts = _folder_counts(conn, candidate)
        if counts:
            prefix = candidate
            break
    if not counts and path.strip().strip("/"):
        raise ViewError(f"no photos in a folder {path!r}", 404)
    here = 0
    children: dict[bytes, int] = {}
    for d, n in counts:
        if d == prefix:
            here += n
            continue
        rest = d[len(prefix) + 1:] if prefix else d
        child = rest.split(b"/", 1)[0]
        children[child] = children.get(child, 0) + n
    subs = []
    for name, n in sorted(children.items(), key=lambda kv: folder_text(kv[0]).lower()):
        full = prefix + b"/" + name if prefix else name
        subs.append({"name": folder_text(name), "path": folder_text(full), "count": n, "q": _folder_query(full)})
    parent = None if not prefix else folder_text(prefix.rsplit(b"/", 1)[0]) if b"/" in prefix else ""
    return {"path": folder_text(prefix), "parent": parent, "photos": here, "count": here + sum(children.values()),
            "folders": subs, "q": _folder_query(prefix) if prefix else None}


def _folder_query(raw: bytes) -> str | None:
    """`path:<folder>` for the search language, which reads a folder as UTF-8 text: None for a
    name that is not valid UTF-8 (browse it here by its `path` instead)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    q = _quote(text)
    return f"path:{q}" if q else None


# -- moments ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MomentRule:
    """Consecutive photos (by time taken) belong to one moment while each is less than
    `gap_hours` after the one before it and, when both have a position, less than `distance_km`
    away from the last known position in the moment. A run of at least `min_photos` is a moment."""

    gap_hours: float = 4.0
    distance_km: float = 50.0
    min_photos: int = 3


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lng1, lat2, lng2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(h)))


def _when(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text[:19])
    except (TypeError, ValueError):
        return None


def _walk(conn: sqlite3.Connection, before: tuple[str, int] | None, year: int | None) -> Iterator[sqlite3.Row]:
    """Dated photos newest first, walked along the taken_at index (rowid breaks ties, which the
    index holds too), from just before `before`."""
    where, params = [f"p.taken_at IS NOT NULL", VISIBLE], []
    if year is not None:
        where.append("p.taken_at >= ? AND p.taken_at < ?")
        params += [f"{year:04d}", f"{year + 1:04d}"]
    if before is not None:
        where.append("(p.taken_at < ? OR (p.taken_at = ? AND p.id < ?))")
        params += [before[0], before[0], before[1]]
    cur = conn.execute(f"SELECT p.id, p.taken_at, p.lat, p.lng, p.city, p.region, p.country, p.country_code"
                       f" FROM photos p WHERE {' AND '.join(where)} ORDER BY p.taken_at DESC, p.id DESC", params)
    while True:
        batch = cur.fetchmany(500)
        if not batch:
            return
        yield from batch


def _moment(conn: sqlite3.Connection, rows: list[sqlite3.Row]) -> dict[str, Any]:
    places: dict[tuple[str, str, str], int] = {}
    coords = [(r["lat"], r["lng"]) for r in rows if r["lat"] is not None and r["lng"] is not None]
    for r in rows:
        if r["country_code"]:
            key = (r["city"] or "", r["region"] or "", r["country"] or "")
            places[key] = places.get(key, 0) + 1
    place = None
    if places:
        city, region, country = max(places.items(), key=lambda kv: kv[1])[0]
        place = {"city": city or None, "region": region or None, "country": country or None}
    ids = [int(r["id"]) for r in rows]
    uids = {r["id"]: r["uid"] for r in conn.execute(
        f"SELECT id, uid FROM photos WHERE id IN ({','.join('?' * len(ids))})", ids)}
    cover = conn.execute(f"SELECT p.id FROM photos p WHERE p.id IN ({','.join('?' * len(ids))})"
                         f" ORDER BY {COVER_ORDER} LIMIT 1", ids).fetchone()[0]
    return {
        "start": rows[-1]["taken_at"], "end": rows[0]["taken_at"], "count": len(rows), "place": place,
        "lat": round(sum(c[0] for c in coords) / len(coords), 5) if coords else None,
        "lng": round(sum(c[1] for c in coords) / len(coords), 5) if coords else None,
        "cover": summaries_by_id(conn, [cover])[0], "photos": [uids[i] for i in ids],
    }


def _boundary(cursor: str) -> tuple[str, int]:
    taken_at, sep, photo_id = cursor.rpartition("~")
    if not sep or not taken_at or not photo_id.isdigit():
        raise ViewError("bad cursor: pass the next_cursor of the previous page", field="cursor")
    return taken_at, int(photo_id)


def moments(conn: sqlite3.Connection, *, rule: MomentRule = MomentRule(), limit: int = 20,
            cursor: str | None = None, year: int | None = None) -> dict[str, Any]:
    """Moments newest first, found by walking the photos once along the taken_at index and cutting
    at every gap in time or place (see MomentRule). A page stops right after its last moment; since
    a moment always ends at a cut, the next page starting there finds the same moments a single
    walk would."""
    before = _boundary(cursor) if cursor else None
    found: list[dict[str, Any]] = []
    run: list[sqlite3.Row] = []
    last_time: datetime | None = None
    last_pos: tuple[float, float] | None = None
    gap = timedelta(hours=rule.gap_hours)
    next_cursor = None

    def close() -> None:
        if len(run) >= rule.min_photos:
            found.append(_moment(conn, run))

    for r in _walk(conn, before, year):
        when = _when(r["taken_at"])
        if when is None:
            continue
        pos = (r["lat"], r["lng"]) if r["lat"] is not None and r["lng"] is not None else None
        cut = bool(run) and (last_time is None or last_time - when >= gap or
                             (pos is not None and last_pos is not None and _km(pos, last_pos) >= rule.distance_km))
        if cut:
            close()
            if len(found) >= limit:
                oldest = run[-1]
                next_cursor = f"{oldest['taken_at']}~{oldest['id']}"
                run = []
                break
            run, last_pos = [], None
        run.append(r)
        last_time = when
        if pos is not None:
            last_pos = pos
    else:
        close()
    return {"moments": found, "next_cursor": next_cursor,
            "rule": {"gap_hours": rule.gap_hours, "distance_km": rule.distance_km, "min_photos": rule.min_photos}}


# -- on this day --------------------------------------------------------------------------------------


def on_this_day(conn: sqlite3.Connection, day: date, *, per_year: int = 50) -> dict[str, Any]:
    """Photos taken on the same month and day in earlier years, newest year first. One index range
    per year (taken_at between 'YYYY-MM-DD' and 'YYYY-MM-DD~'), so it stays fast at a million
    photos; 29 February shows only in leap years."""
    first = conn.execute(f"SELECT min(p.taken_at) FROM photos p WHERE p.taken_at >= '0001' AND {VISIBLE}").fetchone()[0]
    years = []
    first_year = int(first[:4]) if first and first[:4].isdigit() else day.year
    md = f"{day.month:02d}-{day.day:02d}"
    for year in range(day.year - 1, first_year - 1, -1):
        lo = f"{year:04d}-{md}"
        rows = conn.execute(f"SELECT p.id FROM photos p WHERE p.taken_at >= ? AND p.taken_at < ? AND {VISIBLE}"
                            f" ORDER BY p.taken_at, p.id", (lo, lo + "~")).fetchall()
        if not rows:
            continue
        ids = [int(r[0]) for r in rows]
        years.append({"year": year, "years_ago": day.year - year, "count": len(ids),
                      "photos": summaries_by_id(conn, ids[:per_year]), "q": f"year:{year} month:{day.month} day:{day.day}"})
    return {"date": day.isoformat(), "years": years}

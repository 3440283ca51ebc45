"""Search benchmark: 20 typical queries on generated stores of 100,000 and 1,000,000 photos.

    .venv/bin/python -m tests.bench.bench_search [--sizes 100000 1000000] [--reps 7]

The stores are written directly in SQLite with the real migrations (cached in
.bench/search-<N>.db; delete the file to regenerate): photos come in events (a day out, a trip)
over 20 years, more in recent years, in summer, at Christmas and at weekends; places are real
GeoNames cities (a few home towns, Zipf-distributed trips); ~15 cameras; labels Zipf-distributed;
faces on ~20% of photos; albums cut from events. The FTS index is built once at the end
(daemon.search.fts.triggers_suspended), then ANALYZE runs, as `PRAGMA optimize` would in service.

Prints, per query, the median and p95 time of the first page (60 photos), deep pages reached by
cursor, and the database size. Asserts nothing: figures from a shared machine are not verdicts.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sqlite3
import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path

from daemon.places.geonames import build_places_db, country_name
from daemon.search import search
from daemon.search.fts import triggers_suspended
from daemon.store.db import apply_migrations
from tests.bench.util import BENCH_DIR, Table, fmt, machine

GENERATOR_VERSION = 1
SEED = 20240601
TARGETS_MS = {100_000: 50.0, 1_000_000: 150.0}

CAMERAS = [  # (make, model, lens, weight)
    ("Apple", "iPhone 13", "iPhone 13 back dual wide camera 5.1mm f/1.6", 20),
    ("Apple", "iPhone 8", "iPhone 8 back camera 3.99mm f/1.8", 12),
    ("samsung", "SM-G991B", None, 10),
    ("Google", "Pixel 7", None, 6),
    ("Canon", "Canon EOS 5D Mark III", "EF24-105mm f/4L IS USM", 8),
    ("Canon", "Canon EOS 40D", "EF-S17-85mm f/4-5.6 IS USM", 5),
    ("Canon", "Canon PowerShot S95", None, 4),
    ("NIKON CORPORATION", "NIKON D750", "24.0-70.0 mm f/2.8", 6),
    ("NIKON", "COOLPIX P6000", None, 3),
    ("SONY", "ILCE-7M3", "FE 24-105mm F4 G OSS", 6),
    ("FUJIFILM", "X-T3", "XF35mmF1.4 R", 5),
    ("OLYMPUS IMAGING CORP.", "E-M10", "OLYMPUS M.14-42mm F3.5-5.6", 3),
    ("Panasonic", "DMC-TZ7", None, 3),
    ("GoPro", "HERO9 Black", None, 2),
    ("DJI", "FC3170", None, 1),
]
LABEL_WORDS = (
    "people portrait beach sea sky sunset tree forest mountain snow lake river city street building church "
    "car bicycle boat train airplane dog cat horse bird flower garden food cake pizza coffee wine party "
    "wedding birthday baby child concert stage museum painting statue bridge castle tower night fireworks "
    "christmas tree desert field farm cow sheep insect butterfly rock waterfall cave island harbor market "
    "restaurant kitchen bedroom office computer book shoe dress hat sunglasses umbrella rain fog cloud "
    "rainbow moon star lighthouse windmill tractor bus tram taxi motorcycle skateboard surfboard ski tennis "
    "football basketball swimming pool playground zoo elephant giraffe lion bear monkey penguin dolphin fish"
).split()
LABEL_WORDS = list(dict.fromkeys(LABEL_WORDS))
CATEGORIES = ["animal", "nature", "water", "outdoor", "indoor", "vehicle", "food", "event", "sport", "building",
              "plant", "landscape"]
FIRST = "Anna Ben Chiara David Emma Felix Giulia Hugo Ines Jonas Karla Luca Marta Nico Olga Paul Rosa Sam Tina Umberto".split()
LAST = "Rossi Müller Smith García Dubois Kowalski Novak Jensen Silva Costa".split()
COLORS = ["black", "grey", "white", "red", "orange", "gold", "yellow", "lime", "green", "teal", "cyan", "blue",
          "purple", "magenta", "pink", "brown"]
COLOR_W = [8, 10, 8, 5, 5, 3, 3, 2, 12, 3, 2, 14, 2, 1, 2, 10]

PHOTO_COLS = ("uid", "type", "primary_file_id", "thumb_key", "taken_at", "taken_offset", "make", "model", "lens", "iso",
              "f_number", "exposure_time", "focal_length", "focal_length_35", "lat", "lng", "width", "height", "rating",
              "title", "keywords", "city", "region", "country", "country_code", "main_color", "chroma", "mono",
              "shape", "megapixels", "phash", "quality", "review", "favorite", "private", "archived", "added_at",
              "updated_at", "indexed_at")


def zipf_weights(n: int, s: float = 1.1) -> list[float]:
    return [1.0 / (k ** s) for k in range(1, n + 1)]


def load_places(rng: random.Random) -> list[tuple[str, str, str, str, float, float]]:
    """Real cities: (name, region, country, cc, lat, lng), most populous-looking first (shuffled, seeded)."""
    db = BENCH_DIR / "places.db"
    build_places_db(db)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name, admin1, cc, lat, lng FROM places").fetchall()
    rng.shuffle(rows)
    return [(n, a1, country_name(cc), cc, lat, lng) for n, a1, cc, lat, lng in rows[:5000]]


def event_days(rng: random.Random, years: int, end: datetime) -> tuple[list[datetime], list[float]]:
    """Every day of `years` years with a weight: more photos lately, in summer, at Christmas, at weekends."""
    start = end - timedelta(days=365 * years)
    days, weights = [], []
    d = start
    while d < end:
        age = (end - d).days / 365.0
        w = 1.0 / (1.0 + 0.12 * age)  # phones: more photos every year
        if d.month in (7, 8):
            w *= 2.5
        if d.month == 12 and d.day >= 20:
            w *= 3.0
        if d.weekday() >= 5:
            w *= 2.0
        days.append(d)
        weights.append(w)
        d += timedelta(days=1)
    return days, weights


def generate(path: Path, n: int) -> None:
    rng = random.Random(SEED + n)
    t0 = time.perf_counter()
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -200000")
    apply_migrations(conn)
    places = load_places(rng)
    homes = places[:3]
    trip_w = zipf_weights(len(places) - 3, 1.0)
    days, day_w = event_days(rng, 20, datetime(2025, 1, 1))
    cam_w = [c[3] for c in CAMERAS]
    label_w = zipf_weights(len(LABEL_WORDS), 1.05)
    people = [f"{FIRST[i % len(FIRST)]} {LAST[(i * 7) % len(LAST)]}" + ("" if i < 200 else f" {i}") for i in range(200)]
    people_w = zipf_weights(len(people), 1.2)

    conn.execute("BEGIN")
    with triggers_suspended(conn):
        for i, word in enumerate(LABEL_WORDS):
            cats = rng.sample(CATEGORIES, rng.choice((1, 1, 2)))
            conn.execute("INSERT INTO labels (id, name, categories, created_at) VALUES (?, ?, ?, 'x')",
                         (i + 1, word, json.dumps(cats)))
        conn.executemany("INSERT INTO people (id, uid, name, created_at, updated_at) VALUES (?, ?, ?, 'x', 'x')",
                         [(i + 1, f"person{i + 1:05d}", name, ) for i, name in enumerate(people)])
        photos, files, plabels, faces = [], [], [], []
        events: list[tuple[int, int, str]] = []  # (first photo id, last, title)
        pid = fid = face_id = 0
        while pid < n:
            size = min(n - pid, max(1, int(rng.lognormvariate(2.2, 1.0))))
            day = rng.choices(days, day_w)[0]
            travel = rng.random() < 0.3
            place = rng.choices(places[3:], trip_w)[0] if travel else rng.choice(homes)
            cam = rng.choices(CAMERAS, cam_w)[0]
            has_gps = rng.random() < (0.85 if cam[0] in ("Apple", "samsung", "Google") else 0.3)
            start = day + timedelta(hours=rng.uniform(7, 20))
            folder = f"{day:%Y}/{day:%Y-%m-%d} {place[0]}"
            event_labels = rng.choices(range(1, len(LABEL_WORDS) + 1), label_w, k=4)
            first = pid + 1
            for k in range(size):
                pid += 1
                fid += 1
                taken = start + timedelta(seconds=int(k * rng.expovariate(1 / 60.0)))
                kind = rng.random()
                ptype = "video" if kind < 0.04 else "live" if kind < 0.07 else "raw" if kind < 0.08 else "image"
                w, h = (4032, 3024) if rng.random() < 0.7 else (3024, 4032)
                shape = "landscape" if w > h else "portrait"
                if rng.random() < 0.02:
                    shape, w, h = "panorama", 12000, 3000
                elif rng.random() < 0.03:
                    shape, w = "square", h
                lat = lng = None
                if has_gps:
                    lat = place[4] + rng.gauss(0, 0.01)
                    lng = place[5] + rng.gauss(0, 0.01)
                mono = 1 if rng.random() < 0.04 else 0
                color = "grey" if mono else rng.choices(COLORS, COLOR_W)[0]
                name = f"IMG_{pid:07d}"
                ext = {"video": "MP4", "raw": "CR2"}.get(ptype, "JPG")
                rel = f"{folder}/{name}.{ext}"
                files.append((fid, pid, rel.encode(), rel, folder.encode(), name.lower(),
                              "video" if ptype == "video" else "raw" if ptype == "raw" else "image"))
                primary = fid
                if ptype == "live" or (ptype == "image" and rng.random() < 0.05):
                    fid += 1
                    ext2 = "MOV" if ptype == "live" else "CR2"
                    p2 = f"{folder}/{name}.{ext2}"
                    files.append((fid, pid, p2.encode(), p2, folder.encode(), name.lower(),
                                  "video" if ext2 == "MOV" else "raw"))
                added = taken + timedelta(days=rng.expovariate(1 / 30.0))
                added_at = min(added, datetime(2025, 1, 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
                iso = rng.choice((50, 64, 100, 100, 200, 400, 800, 1600, 3200, 6400))
                fl = rng.choice((4.2, 5.1, 24, 35, 50, 70, 105, 200))
                keywords = json.dumps(rng.sample(["family", "holiday", "friends", "work", "best", "print"],
                                                 rng.randint(1, 2))) if rng.random() < 0.1 else "[]"
                photos.append((
                    f"{pid:016x}", ptype, primary, f"{rng.getrandbits(160):040x}", taken.strftime("%Y-%m-%dT%H:%M:%S"),
                    60, cam[0], cam[1], cam[2], iso, rng.choice((1.4, 1.8, 2.8, 4.0, 5.6, 8.0, 11.0)),
                    rng.choice((1 / 1000, 1 / 250, 1 / 60, 1 / 15)), fl, fl * (6 if fl < 10 else 1), lat, lng, w, h,
                    rng.choice((0, 0, 0, 0, 3, 4, 5)), f"{place[0]} {day.year}" if rng.random() < 0.02 else None,
                    keywords, place[0] if has_gps else None, place[1] if has_gps else None,
                    place[2] if has_gps else None, place[3] if has_gps else None, color, 5 if mono else rng.randint(5, 70),
                    mono, shape, round(w * h / 1e6, 1), f"{rng.getrandbits(64):016x}", rng.randint(1, 5),
                    1 if rng.random() < 0.05 else 0, 1 if rng.random() < 0.03 else 0, 1 if rng.random() < 0.01 else 0,
                    1 if rng.random() < 0.01 else 0, added_at, added_at, added_at))
                for lid in set(rng.sample(event_labels, rng.randint(0, 3))):
                    plabels.append((pid, lid, round(rng.uniform(0.3, 0.99), 2)))
                if rng.random() < 0.2:
                    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
                        face_id += 1
                        person = rng.choices(range(1, len(people) + 1), people_w)[0] if rng.random() < 0.7 else None
                        faces.append((face_id, f"face{face_id:08d}", pid, person))
            events.append((first, pid, folder))
            if len(photos) >= 50_000:
                _flush(conn, photos, files, plabels, faces)
        _flush(conn, photos, files, plabels, faces)
        albums = rng.sample(events, min(len(events), max(50, n // 200)))
        for a, (first, last, folder) in enumerate(albums, start=1):
            conn.execute("INSERT INTO albums (id, uid, title, created_at, updated_at) VALUES (?, ?, ?, 'x', 'x')",
                         (a, f"album{a:06d}", folder.split(" ", 1)[1] + f" {a}"))
            conn.executemany("INSERT INTO album_photos VALUES (?, ?, ?, 'x')",
                             [(a, p, float(i)) for i, p in enumerate(range(first, last + 1))])
        t_rows = time.perf_counter() - t0
    t_fts = time.perf_counter() - t0 - t_rows
    conn.execute("COMMIT")
    conn.execute("INSERT INTO photos_fts (photos_fts) VALUES ('optimize')")
    conn.execute("ANALYZE")
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('bench_generator', ?)", (str(GENERATOR_VERSION),))
    conn.execute("VACUUM")
    conn.close()
    tmp.rename(path)
    print(f"  generated {n:,} photos in {time.perf_counter() - t0:.0f} s (rows {t_rows:.0f} s, full-text index"
          f" {t_fts:.0f} s)")


def _flush(conn: sqlite3.Connection, photos: list, files: list, plabels: list, faces: list) -> None:
    marks = ", ".join("?" * len(PHOTO_COLS))
    conn.executemany(f"INSERT INTO photos (id, {', '.join(PHOTO_COLS)}) VALUES (?, {marks})",
                     [(int(p[0], 16), *p) for p in photos])
    conn.executemany("INSERT INTO files (id, photo_id, path, path_text, dir, stem, kind, role, size, mtime_ns, state,"
                     " first_seen, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, 1000000, 0, 'indexed', 'x', 'x')",
                     files)
    conn.executemany("INSERT INTO photo_labels VALUES (?, ?, ?, 'image', 0)", plabels)
    conn.executemany("INSERT INTO faces (id, uid, photo_id, x, y, w, h, score, keypoints, embedding, person_id,"
                     " created_at) VALUES (?, ?, ?, 0.4, 0.3, 0.1, 0.1, 0.9, '[]', x'00', ?, 'x')", faces)
    for rows in (photos, files, plabels, faces):
        rows.clear()


def ensure_store(n: int) -> Path:
    BENCH_DIR.mkdir(exist_ok=True)
    path = BENCH_DIR / f"search-{n}.db"
    if path.exists():
        try:
            with sqlite3.connect(path) as conn:
                ok = conn.execute("SELECT value FROM meta WHERE key = 'bench_generator'").fetchone()
            if ok and ok[0] == str(GENERATOR_VERSION):
                return path
        except sqlite3.Error:
            pass
        path.unlink()
    print(f"  generating {n:,} photos into {path} ...", flush=True)
    generate(path, n)
    return path


def queries(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """20 typical queries, with values taken from the store so that each one matches something."""
    home = conn.execute("SELECT city, country_code, lat, lng FROM photos WHERE city IS NOT NULL"
                        " GROUP BY city ORDER BY count(*) DESC LIMIT 1").fetchone()
    person = conn.execute("SELECT name FROM people ORDER BY id LIMIT 1").fetchone()[0]
    rare = conn.execute("SELECT name FROM labels ORDER BY id DESC LIMIT 1").fetchone()[0]
    album = conn.execute("SELECT title FROM albums ORDER BY id LIMIT 1").fetchone()[0]
    trip = conn.execute("SELECT country_code FROM photos WHERE country_code IS NOT NULL AND country_code != ?"
                        " GROUP BY 1 ORDER BY count(*) DESC LIMIT 1", (home[1],)).fetchone()[0]
    return [
        ("everything", "", "newest"),
        ("common label", "label:beach", "newest"),
        ("rare label", f"label:{rare}", "newest"),
        ("country", f"country:{trip}", "newest"),
        ("home city", f'city:"{home[0]}"', "newest"),
        ("year", "year:2015", "newest"),
        ("year+month", "year:2012 month:7", "newest"),
        ("camera", "camera:canon", "newest"),
        ("iso+aperture", "iso:1600- f:1.4-2.8", "newest"),
        ("person", f'person:"{person}"', "newest"),
        ("new faces", "face:new", "newest"),
        ("free text", "beach", "newest"),
        ("free text x2, relevance", f'"{home[0]}" sunset', "relevance"),
        ("combination", f"label:dog|cat country:{home[1]} year:2018-2020", "newest"),
        ("near a place", f"near:{home[2]:.4f},{home[3]:.4f} dist:5", "newest"),
        ("colour, not mono", "color:red -mono:yes", "newest"),
        ("album", f'album:"{album}"', "newest"),
        ("favourites, oldest", "favorite:yes", "oldest"),
        ("folder", "path:2019", "added"),
        ("random", "label:animal", "random"),
    ]


def timed(conn: sqlite3.Connection, q: str, order: str, cursor: str | None = None) -> tuple[float, object]:
    t0 = time.perf_counter()
    page = search(conn, q, order=order, limit=60, cursor=cursor)
    return (time.perf_counter() - t0) * 1000, page


def bench(n: int, reps: int) -> dict[str, object]:
    path = ensure_store(n)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA query_only = ON")
    conn.execute("PRAGMA cache_size = -8000")  # what a reader gets in service (daemon.store.db)
    table = Table(["query", "order", "first page ms (median)", "p95", "photos"])
    samples: list[float] = []
    result: dict[str, object] = {"photos": n, "db_mb": round(path.stat().st_size / 1e6, 1), "queries": {}}
    for name, q, order in queries(conn):
        times = []
        page = None
        for _ in range(reps):
            ms, page = timed(conn, q, order)
            times.append(ms)
        samples += times
        p95 = _p95(times)
        table.add(f"{name}: {q}"[:70], order, fmt(statistics.median(times)), fmt(p95), len(page.ids))
        result["queries"][name] = {"q": q, "order": order, "median_ms": statistics.median(times), "p95_ms": p95}
    deep = Table(["deep page (by cursor)", "page", "ms"])
    for name, q, order in (("everything", "", "newest"), ("common label", "label:beach", "newest"),
                           ("camera", "camera:canon", "oldest"), ("random", "", "random")):
        cursor = None
        page_no, ms = 0, 0.0
        for page_no in range(1, 101):
            ms, page = timed(conn, q, order, cursor)
            cursor = page.next_cursor
            if cursor is None:
                break
        deep.add(f"{name}: {q} ({order})", page_no, fmt(ms))
    t_facets, _ = _facets(conn)
    print(f"\n== {n:,} photos: database {result['db_mb']} MB ({path})")
    print(table.render())
    print(deep.render())
    overall_p95 = _p95(samples)
    result.update(p95_ms=overall_p95, median_ms=statistics.median(samples), facets_ms=t_facets)
    target = TARGETS_MS.get(n)
    print(f"first page over all queries: median {fmt(statistics.median(samples))} ms, p95 {fmt(overall_p95)} ms"
          + (f" (target p95 < {target:.0f} ms)" if target else ""))
    print(f"facets year+country+label+camera+color for everything: {fmt(t_facets)} ms")
    conn.close()
    return result


def _facets(conn: sqlite3.Connection) -> tuple[float, object]:
    t0 = time.perf_counter()
    page = search(conn, "", limit=60, facets=["year", "country", "label", "camera", "color"])
    return (time.perf_counter() - t0) * 1000, page


def _p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, math.ceil(0.95 * len(s)) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    print("search benchmark on", machine())
    for n in args.sizes:
        bench(n, args.reps)


if __name__ == "__main__":
    main()

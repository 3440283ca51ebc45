"""SQL injection through the search language: hostile text is only ever data.

Every query below must either run (returning whatever matches) or fail with SearchError, never
with an sqlite3 error, and the database must be byte-for-byte the same afterwards."""

from __future__ import annotations

import hashlib
import random
import sqlite3
from pathlib import Path

import pytest

from daemon.search import FILTERS, ORDERS, SearchError, search
from tests.unit.test_search_filters import NOW, Store, fill

HOSTILE = [
    "'); DROP TABLE photos; --",
    "\"); DROP TABLE photos; --",
    "label:'); DROP TABLE photos; --",
    'label:"x\' OR 1=1 --"',
    "city:x' OR '1'='1",
    "title:\"a\\\" OR 1=1 --\"",
    "camera:%' UNION SELECT uid FROM photos --",
    "lens:%_%",
    "filename:*' OR 1=1 --",
    "filename:[a-z]*",
    "path:x\x00y",
    "keyword:\x00",
    "person:' OR 1=1) --",
    "album:x') OR 1=1 --",
    "country:'; ATTACH DATABASE '/tmp/evil.db' AS e; --",
    "NEAR(a b) AND title:x",
    "a OR b NOT c",
    "title:* ",
    "\"a\" * \"b\"",
    "{title}: x",
    "title : x",
    "^a",
    "col:umn",
    "- -- --- -label:x",
    "\"\"\"\"\"\"",
    "'''''",
    "\\\\\\",
    "|||",
    "label:|",
    "label:\"\"",
    "%%% ___",
    "🙂 label:🙂 city:東京 北京",
    "\u202e\u200b\ufeff",
    "\ud800",  # a lone surrogate
    "x" * 2048,
    "label:" + "a" * 2000,
]


def snapshot(conn: sqlite3.Connection) -> str:
    return hashlib.sha256("\n".join(conn.iterdump()).encode("utf-8", "surrogatepass")).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return fill(Store(tmp_path / "shoebox.db"))


def run(store: Store, q: str, **kw: object) -> None:
    try:
        search(store.conn, q, now=NOW, facets=["year", "label"], count=True, **kw)
    except SearchError:
        pass


@pytest.mark.parametrize("q", HOSTILE)
def test_hostile_queries_change_nothing(store: Store, q: str) -> None:
    before = snapshot(store.conn)
    for order in ORDERS:
        run(store, q, order=order)
    assert snapshot(store.conn) == before
    assert store.conn.execute("SELECT count(*) FROM photos").fetchone()[0] == 15


def test_hostile_text_is_matched_literally(store: Store) -> None:
    # a LIKE or GLOB wildcard typed by the user matches only itself
    assert search(store.conn, "lens:%_%").uids == []
    assert search(store.conn, "camera:%").uids == []
    assert search(store.conn, "filename:[d]*").uids == []
    # FTS5 operators typed by the user are words, not syntax
    assert search(store.conn, "rome OR zurich").uids == []
    assert search(store.conn, "NEAR(rome night)").uids == []


def test_every_filter_with_hostile_values(store: Store) -> None:
    before = snapshot(store.conn)
    for key in FILTERS:
        for value in ("'", '"x"', "x'--", "1;DROP TABLE photos", "\\", "%", "*", "1-2", "yes", "2008", "a|b",
                      "41.9,12.5"):
            run(store, f"{key}:{value}")
            run(store, f"-{key}:{value} near:41.9,12.5")
    assert snapshot(store.conn) == before


def test_random_garbage(store: Store) -> None:
    rng = random.Random(1234)
    alphabet = "abcé日'\"\\|-:*%_;()[]{}^ \t\x00" + "".join(f"{k}:" for k in list(FILTERS)[:12])
    before = snapshot(store.conn)
    for _ in range(400):
        q = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        run(store, q, order=rng.choice(["newest", "relevance", "random"]))
    assert snapshot(store.conn) == before


def test_oversized_query_is_refused_clearly(store: Store) -> None:
    with pytest.raises(SearchError) as err:
        search(store.conn, "cat " * 1000)
    assert err.value.key == "q" and "too long" in str(err.value)


@pytest.mark.parametrize("cursor", ["'; DROP TABLE photos; --", "eyJvIjoibmV3ZXN0IiwicyI6MCwiayI6WyInKSBPUiAxPTEiLDFdLCJmIjoieCJ9",
                                    "\x00", "é"])
def test_hostile_cursors(store: Store, cursor: str) -> None:
    before = snapshot(store.conn)
    with pytest.raises(SearchError) as err:
        search(store.conn, "", cursor=cursor)
    assert err.value.key == "cursor"
    assert snapshot(store.conn) == before


def test_bad_order_limit_and_facet(store: Store) -> None:
    for kw, key in (({"order": "newest; DROP TABLE photos"}, "order"), ({"limit": 0}, "limit"),
                    ({"limit": 10**9}, "limit"), ({"facets": ["year; --"]}, "facets")):
        with pytest.raises(SearchError) as err:
            search(store.conn, "", **kw)
        assert err.value.key == key

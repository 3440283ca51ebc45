"""The search language's syntax: every form parses to the right tree; every mistake is named."""

from __future__ import annotations

import pytest

from daemon.search import MAX_QUERY_CHARS, SearchError, parse
from daemon.search.values import DateRange, DateSpec, Near, Range


def test_free_text_words_phrases_prefixes_and_negation() -> None:
    q = parse('beach "new york" sun* -rain cat|dog')
    texts = [(tuple((a.text, a.phrase, a.prefix) for a in t.alternatives), t.negated) for t in q.terms]
    assert texts == [
        ((("beach", False, False),), False),
        ((("new york", True, False),), False),
        ((("sun", False, True),), False),
        ((("rain", False, False),), True),
        ((("cat", False, False), ("dog", False, False)), False),
    ]
    assert q.filters == ()


def test_filters_with_quotes_or_and_negation() -> None:
    q = parse("label:cat|dog -country:it city:\"new york\" state:'new south wales' title:a\\ b\\\"c")
    got = [(f.key, f.values, f.negated) for f in q.filters]
    assert got == [
        ("label", ("cat", "dog"), False),
        ("country", (("code", "IT"),), True),
        ("city", ("new york",), False),
        ("state", ("new south wales",), False),
        ("title", ('a b"c',), False),
    ]


def test_quoted_alternatives_and_escapes_inside_quotes() -> None:
    q = parse('label:"ice cream"|cake|"a|b" title:"say \\"hi\\""')
    assert q.filters[0].values == ("ice cream", "cake", "a|b")
    assert q.filters[1].values == ('say "hi"',)


def test_apostrophes_are_letters_not_quotes() -> None:
    q = parse("o'neil 'tis")
    assert [t.alternatives[0].text for t in q.terms] == ["o'neil", "'tis"]
    assert parse("title:rock'n'roll").filters[0].values == ("rock'n'roll",)


def test_keys_are_case_insensitive_and_aliases_map() -> None:
    q = parse("LABEL:cat subject:anna folder:2008 favourite:yes colour:red")
    assert [f.key for f in q.filters] == ["label", "person", "path", "favorite", "color"]
    assert q.filters[2].values == (b"2008",)


def test_ranges() -> None:
    f = {x.key: x.values[0] for x in parse("iso:100-400 f:1.8-4 mm:24-70 mp:12- quality:-3 faces:2 chroma:.5-9.").filters}
    assert f == {"iso": Range(100, 400), "f": Range(1.8, 4), "mm": Range(24, 70), "mp": Range(12, None),
                 "quality": Range(None, 3), "faces": Range(2, 2), "chroma": Range(0.5, 9.0)}
    assert parse("f:f/2.8").filters[0].values == (Range(2.8, 2.8),)
    assert parse("mm:50mm").filters[0].values == (Range(50, 50),)


def test_booleans_dates_and_places() -> None:
    q = parse("mono:yes panorama:FALSE live:1 before:2008-07 after:2001 added:30d taken:2008..2010-06-01 "
              "near:43.46,11.88 dist:2 near:abc123 face:new type:movie color:Gray")
    v = [(f.key, f.values[0]) for f in q.filters]
    assert v == [
        ("mono", True), ("panorama", False), ("live", True),
        ("before", DateSpec("absolute", 2008, 7)), ("after", DateSpec("absolute", 2001)),
        ("added", DateRange(DateSpec("relative", amount=30, unit="d"), DateSpec("relative", amount=30, unit="d"))),
        ("taken", DateRange(DateSpec("absolute", 2008), DateSpec("absolute", 2010, 6, 1))),
        ("near", Near(lat=43.46, lng=11.88)), ("dist", Range(2, 2)), ("near", Near(uid="abc123")),
        ("face", "new"), ("type", "video"), ("color", "grey"),
    ]


def test_nul_and_control_characters_are_spaces() -> None:
    q = parse("cat\x00dog\tlabel:x\x07")
    assert [t.alternatives[0].text for t in q.terms] == ["cat", "dog"]
    assert q.filters[0].values == ("x",)


def test_empty_and_whitespace_queries() -> None:
    assert parse("") == parse("   ").__class__(text="")
    assert parse("  -  ").terms[0].alternatives[0].text == "-"


@pytest.mark.parametrize("q, key, words", [
    ("colr:red", "colr", ["unknown filter 'colr'", "did you mean 'color'"]),
    ("foo:bar", "foo", ["unknown filter 'foo'"]),
    ("iso:abc", "iso", ["bad value for iso: 'abc'", "a range like 100-400"]),
    ("iso:400-100", "iso", ["upside down"]),
    ("f:fast", "f", ["bad value for f: 'fast'", "1.8-4"]),
    ("year:20o8", "year", ["bad value for year"]),
    ("year:2008.5", "year", ["integer"]),
    ("month:13", "month", ["between 1 and 12"]),
    ("mono:maybe", "mono", ["bad value for mono: 'maybe'", "yes or no"]),
    ("face:perhaps", "face", ["yes, no or new"]),
    ("before:yesterday-ish", "before", ["bad value for before"]),
    ("after:2008-02-30", "after", ["no such date"]),
    ("added:..", "added", ["bad value for added"]),
    ("color:chartreuse", "color", ["bad value for color: 'chartreuse'", "orange"]),
    ("type:hologram", "type", ["bad value for type"]),
    ("near:91,0", "near", ["latitude"]),
    ("near:'drop table'", "near", ["photo id or lat,lng"]),
    ("dist:far", "dist", ["bad value for dist"]),
    ("dist:1-3", "dist", ["one distance"]),
    ("path:../etc", "path", ["may not contain .."]),
    ("path:/", "path", ["bad value for path"]),
    ("filename:a/b", "filename", ["file name"]),
    ("label:", "label", ["label needs a value"]),
    ("label:cat|", "label", ["empty alternative"]),
    ('label:"cat', "label", ["unterminated quote"]),
    ('"new york', "q", ["unterminated quote"]),
    ("similar:a;b", "similar", ["photo id"]),
])
def test_errors_name_the_filter(q: str, key: str, words: list[str]) -> None:
    with pytest.raises(SearchError) as err:
        parse(q)
    assert err.value.key == key
    for w in words:
        assert w in str(err.value)


def test_too_long_and_too_many_parts() -> None:
    with pytest.raises(SearchError) as err:
        parse("a" * (MAX_QUERY_CHARS + 1))
    assert err.value.key == "q" and "too long" in str(err.value)
    parse("a" * MAX_QUERY_CHARS)
    with pytest.raises(SearchError) as err:
        parse(" ".join(["x"] * 65))
    assert "too many parts" in str(err.value)

"""Search language text → a Query tree.

Syntax, the same in the API, the web app and smart albums:

    cat beach                     free text, every word must match (FTS5, diacritics ignored)
    "new york"  bea*              a quoted phrase; a trailing * matches a prefix (type-ahead)
    label:cat  country:it         key:value filters, all of them must hold
    city:"new york"               quotes (double or single) around values with spaces
    label:cat|dog                 | inside a value: any of the alternatives
    -label:cat  -beach            a leading - negates a filter or a word
    iso:100-400 f:1.8-4 mm:24-70  ranges; iso:800- (at least), iso:-400 (at most)
    title:a\\ b  "say \\"hi\\""      a backslash takes the next character literally

The parser only knows the syntax and which filters exist (daemon.search.filters checks and
types each value, so a bad value is reported here, before any SQL is made).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from daemon.search.errors import SearchError

#: Longer queries are refused: nobody types them, and they only cost time.
MAX_QUERY_CHARS = 2048
#: More parts than this is not a search, it is an attack (each part becomes SQL).
MAX_PARTS = 64
#: Alternatives (a|b|c) in one part, and in the whole query: each becomes a subquery or an FTS5
#: term, so 500 ORed words would be 500 index lookups per search.
MAX_ALTERNATIVES = 32
MAX_TERMS = 128

_KEY = re.compile(r"([A-Za-z][A-Za-z0-9_]*):")


@dataclass(frozen=True)
class Text:
    """One free-text alternative: a word or a phrase, optionally a prefix."""

    text: str
    phrase: bool = False
    prefix: bool = False


@dataclass(frozen=True)
class Term:
    """Free text: any of `alternatives` must match (all of them must not, when negated)."""

    alternatives: tuple[Text, ...]
    negated: bool = False


@dataclass(frozen=True)
class Filter:
    """key:value; `values` are the typed alternatives (ORed), `raw` what the user wrote."""

    key: str
    values: tuple[Any, ...]
    negated: bool = False
    raw: str = ""


@dataclass(frozen=True)
class Query:
    text: str
    terms: tuple[Term, ...] = ()
    filters: tuple[Filter, ...] = ()

    def get(self, key: str) -> list[Filter]:
        return [f for f in self.filters if f.key == key]

    def has(self, key: str) -> bool:
        return any(f.key == key for f in self.filters)

    @property
    def positive_terms(self) -> list[Term]:
        return [t for t in self.terms if not t.negated]


@dataclass
class _Alt:
    text: str
    quoted: bool


@dataclass
class _Token:
    negated: bool
    key: str | None
    alternatives: list[_Alt] = field(default_factory=list)
    raw: str = ""


def _clean(q: str) -> str:
    """Control characters (NUL included) are whitespace: they cannot be meant. Lone surrogates
    (possible in JSON, impossible in UTF-8) become U+FFFD so SQLite can take the text."""
    return "".join(" " if unicodedata.category(ch) == "Cc" else "\ufffd" if "\ud800" <= ch <= "\udfff" else ch
                   for ch in q)


def _tokens(q: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(q)
    while i < n:
        if q[i].isspace():
            i += 1
            continue
        start = i
        negated = False
        if q[i] == "-" and i + 1 < n and not q[i + 1].isspace():
            negated = True
            i += 1
        key = None
        m = _KEY.match(q, i)
        if m:
            key = m.group(1).lower()
            i = m.end()
        token = _Token(negated=negated, key=key)
        # one value: alternatives separated by | ; each may start with a quote
        buf: list[str] = []
        quoted = False
        at_alt_start = True
        while i < n and not q[i].isspace():
            ch = q[i]
            if at_alt_start and ch in "\"'":
                quote, quote_at, buf_before = ch, i, list(buf)
                at_alt_start = False
                i += 1
                closed = False
                while i < n:
                    c = q[i]
                    if c == "\\" and i + 1 < n:
                        buf.append(q[i + 1])
                        i += 2
                        continue
                    if c == quote:
                        closed = True
                        i += 1
                        break
                    buf.append(c)
                    i += 1
                if not closed:
                    if quote == "'":  # an apostrophe ('tis), not a quote: read it as a letter
                        i = quote_at + 1
                        buf = [*buf_before, "'"]
                        continue
                    raise SearchError(f"unterminated quote in {q[start:]!r}", key=key or "q", value=q[start:])
                quoted = True
                at_alt_start = False
                continue
            at_alt_start = False
            if ch == "\\" and i + 1 < n:
                buf.append(q[i + 1])
                i += 2
                continue
            if ch == "|":
                token.alternatives.append(_Alt("".join(buf), quoted))
                buf, quoted, at_alt_start = [], False, True
                i += 1
                continue
            buf.append(ch)
            i += 1
        token.alternatives.append(_Alt("".join(buf), quoted))
        token.raw = q[start:i]
        out.append(token)
    return out


def parse(q: str) -> Query:
    """Parse a search string; SearchError names the part that is wrong."""
    from daemon.search.filters import ALIASES, FILTERS  # the filter table imports value parsers only

    if not isinstance(q, str):
        raise SearchError("the query must be text", key="q")
    if len(q) > MAX_QUERY_CHARS:
        raise SearchError(f"the query is too long ({len(q)} characters, at most {MAX_QUERY_CHARS})", key="q")
    q = _clean(q)
    tokens = _tokens(q)
    if len(tokens) > MAX_PARTS:
        raise SearchError(f"the query has too many parts ({len(tokens)}, at most {MAX_PARTS})", key="q")
    total = 0
    for tok in tokens:
        if len(tok.alternatives) > MAX_ALTERNATIVES:
            raise SearchError(f"too many alternatives in {tok.raw[:40]!r} ({len(tok.alternatives)}, at most"
                              f" {MAX_ALTERNATIVES} separated by |)", key=tok.key or "q", value=tok.raw[:200])
        total += len(tok.alternatives)
    if total > MAX_TERMS:
        raise SearchError(f"the query has too many terms ({total} words, values and alternatives, at most {MAX_TERMS})",
                          key="q")
    terms: list[Term] = []
    filters: list[Filter] = []
    for tok in tokens:
        if tok.key is None:
            alts = []
            for a in tok.alternatives:
                text = a.text
                prefix = not a.quoted and text.endswith("*") and len(text.rstrip("*")) > 0
                text = text.rstrip("*") if prefix else text
                if text.strip():
                    alts.append(Text(text=text, phrase=a.quoted, prefix=prefix))
            if alts:
                terms.append(Term(alternatives=tuple(alts), negated=tok.negated))
            continue
        key = ALIASES.get(tok.key, tok.key)
        spec = FILTERS.get(key)
        if spec is None:
            close = difflib.get_close_matches(tok.key, list(FILTERS) + list(ALIASES), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SearchError(f"unknown filter {tok.key!r}{hint}", key=tok.key, value=None)
        values = []
        for a in tok.alternatives:
            if not a.text.strip():
                what = "an empty value" if len(tok.alternatives) == 1 else "an empty alternative"
                raise SearchError(f"{key} needs a value, got {what} in {tok.raw!r}", key=key, value="")
            values.append(spec.parse(key, a.text))
        filters.append(Filter(key=key, values=tuple(values), negated=tok.negated, raw=tok.raw))
    return Query(text=q, terms=tuple(terms), filters=tuple(filters))

"""Typed filter values: numbers and ranges, yes/no, dates and date spans, places on the globe.

Each parser takes the filter key (for the error message) and one alternative of the value as the
user typed it, and returns a value object or raises SearchError naming both. Dates are kept as
written and resolved against "now" when compiling, so a saved smart album ("added:30d") keeps
meaning "the last 30 days" tomorrow.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from daemon.search.errors import SearchError

_NUMBER = r"\d+(?:\.\d*)?|\.\d+"
_RANGE = re.compile(rf"^\s*({_NUMBER})?\s*(-)?\s*({_NUMBER})?\s*$")


@dataclass(frozen=True)
class Range:
    """Inclusive bounds; None is open. `iso:400` is Range(400, 400)."""

    lo: float | None
    hi: float | None


def parse_range(key: str, text: str, *, unit: str = "", prefix: str = "", example: str = "100-400",
                lo_limit: float | None = None, hi_limit: float | None = None, integer: bool = False) -> Range:
    """'100', '100-400', '100-' (at least), '-400' (at most); an optional unit suffix ('mm') and
    prefix ('f/') are ignored, so `mm:24-70mm` and `f:f/2.8` read as people write them."""
    raw = text
    t = text.strip().lower()
    if prefix and t.startswith(prefix):
        t = t[len(prefix):]
    if unit:
        t = t.replace(unit, "")
    m = _RANGE.match(t)
    what = "an integer" if integer else "a number"
    error = SearchError(f"bad value for {key}: {raw!r} (expected {what} or a range like {example})", key=key, value=raw)
    if not m or (m.group(1) is None and m.group(3) is None):
        raise error
    lo = float(m.group(1)) if m.group(1) is not None else None
    hi = float(m.group(3)) if m.group(3) is not None else None
    if m.group(2) is None:  # a single number
        if hi is not None:
            raise error
        hi = lo
    for v in (lo, hi):
        if v is None:
            continue
        if not math.isfinite(v) or (integer and v != int(v)):
            raise error
        if (lo_limit is not None and v < lo_limit) or (hi_limit is not None and v > hi_limit):
            raise SearchError(f"bad value for {key}: {raw!r} (must be between {_fmt(lo_limit)} and {_fmt(hi_limit)})",
                              key=key, value=raw)
    if lo is not None and hi is not None and lo > hi:
        raise SearchError(f"bad value for {key}: {raw!r} (the range is upside down)", key=key, value=raw)
    return Range(lo, hi)


def _fmt(v: float | None) -> str:
    return "?" if v is None else (str(int(v)) if v == int(v) else str(v))


_TRUE = {"yes", "true", "y", "1", "on"}
_FALSE = {"no", "false", "n", "0", "off"}


def parse_bool(key: str, text: str) -> bool:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise SearchError(f"bad value for {key}: {text!r} (expected yes or no)", key=key, value=text)


@dataclass(frozen=True)
class DateSpec:
    """A day, month or year as written ('2008', '2008-07', '2008-07-14'), 'today', 'yesterday',
    or a span back from now ('30d', '2w', '6m', '1y')."""

    kind: str  # "absolute" | "today" | "yesterday" | "relative"
    year: int = 0
    month: int = 0
    day: int = 0
    amount: int = 0
    unit: str = ""

    def span(self, now: datetime) -> tuple[datetime, datetime]:
        """[start, end) in the same clock as `now`."""
        if self.kind == "today":
            start = datetime(now.year, now.month, now.day)
            return start, start + timedelta(days=1)
        if self.kind == "yesterday":
            end = datetime(now.year, now.month, now.day)
            return end - timedelta(days=1), end
        if self.kind == "relative":
            days = {"d": 1, "w": 7, "m": 30.4375, "y": 365.25}[self.unit] * self.amount
            return now.replace(tzinfo=None) - timedelta(days=days), now.replace(tzinfo=None) + timedelta(days=1)
        if self.day:
            start = datetime(self.year, self.month, self.day)
            return start, start + timedelta(days=1)
        if self.month:
            start = datetime(self.year, self.month, 1)
            nxt = datetime(self.year + (self.month == 12), self.month % 12 + 1, 1)
            return start, nxt
        return datetime(self.year, 1, 1), datetime(self.year + 1, 1, 1)


_DATE = re.compile(r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?$")
_RELATIVE = re.compile(r"^(\d{1,4})\s*([dwmy])$")
DATE_HELP = "expected a date like 2008, 2008-07 or 2008-07-14, today, yesterday, or a span back like 30d, 2w, 6m, 1y"


def parse_date(key: str, text: str) -> DateSpec:
    t = text.strip().lower()
    if t in ("today", "yesterday"):
        return DateSpec(kind=t)
    m = _RELATIVE.match(t)
    if m:
        return DateSpec(kind="relative", amount=int(m.group(1)), unit=m.group(2))
    m = _DATE.match(t)
    if m:
        year, month, day = int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0)
        try:
            if year < 1 or year > 9998:
                raise ValueError
            date(year, month or 1, day or 1)
        except ValueError:
            raise SearchError(f"bad value for {key}: {text!r} (no such date)", key=key, value=text) from None
        return DateSpec(kind="absolute", year=year, month=month, day=day)
    raise SearchError(f"bad value for {key}: {text!r} ({DATE_HELP})", key=key, value=text)


@dataclass(frozen=True)
class DateRange:
    """One date (its whole day/month/year) or 'from..to' with both ends included."""

    start: DateSpec | None
    end: DateSpec | None

    def bounds(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        lo = self.start.span(now)[0] if self.start else None
        hi = self.end.span(now)[1] if self.end else None
        return lo, hi


def parse_date_range(key: str, text: str) -> DateRange:
    """'2024-05', '2024-01..2024-03', '2024-01..' (from), '..2024-03' (until), '30d'."""
    if ".." in text:
        a, _, b = text.partition("..")
        if not a.strip() and not b.strip():
            raise SearchError(f"bad value for {key}: {text!r} ({DATE_HELP}, or a range like 2024-01..2024-03)",
                              key=key, value=text)
        start = parse_date(key, a) if a.strip() else None
        end = parse_date(key, b) if b.strip() else None
        if start and end and start.kind == end.kind == "absolute":
            now = datetime(2000, 1, 1)
            if start.span(now)[0] >= end.span(now)[1]:
                raise SearchError(f"bad value for {key}: {text!r} (the range is upside down)", key=key, value=text)
        return DateRange(start, end)
    spec = parse_date(key, text)
    return DateRange(spec, spec)


@dataclass(frozen=True)
class Near:
    """Either another photo (uid) or a point."""

    uid: str | None = None
    lat: float | None = None
    lng: float | None = None


_LATLNG = re.compile(rf"^\s*(-?(?:{_NUMBER}))\s*,\s*(-?(?:{_NUMBER}))\s*$")


def parse_near(key: str, text: str) -> Near:
    m = _LATLNG.match(text)
    if m:
        lat, lng = float(m.group(1)), float(m.group(2))
        if not (-90 <= lat <= 90 and -180 <= lng <= 180):
            raise SearchError(f"bad value for {key}: {text!r} (latitude must be within ±90 and longitude within ±180)",
                              key=key, value=text)
        return Near(lat=lat, lng=lng)
    uid = text.strip()
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", uid):
        raise SearchError(f"bad value for {key}: {text!r} (expected a photo id or lat,lng like 43.46,11.88)",
                          key=key, value=text)
    return Near(uid=uid)


def parse_uid(key: str, text: str) -> str:
    uid = text.strip()
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", uid):
        raise SearchError(f"bad value for {key}: {text!r} (expected a photo id)", key=key, value=text)
    return uid

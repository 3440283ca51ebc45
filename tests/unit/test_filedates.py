"""Dates in file names: the shapes phones and apps write, and nothing that merely looks numeric."""

from __future__ import annotations

import datetime as dt

import pytest

from daemon.library.filedates import date_from_name
from daemon.library.sources import Source


@pytest.mark.parametrize(
    ("name", "taken_at"),
    [
        ("20190705_153012.jpg", "2019-07-05T15:30:12"),
        ("IMG_20190705_153012.jpg", "2019-07-05T15:30:12"),
        ("IMG_20190705_153012_HDR.jpg", "2019-07-05T15:30:12"),
        ("VID_20190705_153012.mp4", "2019-07-05T15:30:12"),
        ("PXL_20190705_153012345.jpg", "2019-07-05T15:30:12.345"),
        ("PXL_20190705_153012345.MP.jpg", "2019-07-05T15:30:12.345"),
        ("2019-07-05 15.30.12.jpg", "2019-07-05T15:30:12"),
        ("Screenshot_2019-07-05-15-30-12.png", "2019-07-05T15:30:12"),
        ("Screenshot_20190705-153012.png", "2019-07-05T15:30:12"),
        ("IMG-20190705-WA0001.jpg", "2019-07-05T00:00:00"),
        ("VID-20190705-WA0012.mp4", "2019-07-05T00:00:00"),
    ],
)
def test_names_phones_write_give_their_date(name: str, taken_at: str) -> None:
    assert date_from_name(name) == (taken_at, Source.FILENAME)


@pytest.mark.parametrize(
    "name",
    [
        "12345678.jpg",  # a serial number
        "DSC_1234.jpg",
        "IMG_12345678_123456.jpg",  # digits, but month 56
        "20191305_153012.jpg",  # month 13
        "20190732_153012.jpg",  # day 32
        "20190705_253012.jpg",  # hour 25
        "00000000_000000.jpg",
        "18000101_120000.jpg",  # before photography
        "invoice 2019070512345.jpg",  # a long digit run is not a date
        "IMG-20191340-WA0001.jpg",
        "holiday.jpg",
    ],
)
def test_digit_runs_that_are_not_dates_give_nothing(name: str) -> None:
    assert date_from_name(name) is None


def test_a_name_dated_in_the_future_is_rejected() -> None:
    future = dt.date.today() + dt.timedelta(days=30)
    assert date_from_name(f"IMG_{future:%Y%m%d}_120000.jpg") is None

"""The quality score: which files go to review."""

from __future__ import annotations

import pytest

from daemon.library.quality import BLURRY_BELOW, quality_score
from daemon.library.sources import Source

CAMERA_PHOTO = dict(favorite=False, date_source=Source.EXIF, has_place=True, megapixels=12.0,
                    is_photograph=True, sharpness=400.0)


def test_a_phone_photo_scores_well_and_is_not_reviewed():
    assert quality_score(**CAMERA_PHOTO) == (5, False)


def test_everything_gives_seven_nothing_gives_zero():
    assert quality_score(**{**CAMERA_PHOTO, "favorite": True}) == (7, False)
    assert quality_score(favorite=False, date_source=None, has_place=False, megapixels=0.1,
                         is_photograph=False, sharpness=1.0) == (0, True)


def test_a_small_blurry_download_is_reviewed():
    score, review = quality_score(favorite=False, date_source=Source.ESTIMATE, has_place=False,
                                  megapixels=0.3, is_photograph=False, sharpness=BLURRY_BELOW / 2)
    assert score == 0 and review


def test_a_screenshot_is_borderline_but_kept():
    # dated by its file name, large, sharp, but no camera and no place
    score, review = quality_score(favorite=False, date_source=Source.FILENAME, has_place=False,
                                  megapixels=2.5, is_photograph=False, sharpness=3000.0)
    assert (score, review) == (3, False)


def test_a_favourite_is_never_sent_to_review():
    score, review = quality_score(favorite=True, date_source=None, has_place=False, megapixels=0.2,
                                  is_photograph=False, sharpness=1.0)
    assert score == 2 and review is False


@pytest.mark.parametrize("source,point", [(None, 0), (Source.NONE, 0), (Source.ESTIMATE, 0),
                                          (Source.FILENAME, 1), (Source.JSON, 1), (Source.EXIF, 1),
                                          (Source.MANUAL, 1)])
def test_only_a_reliable_date_earns_its_point(source, point):
    base, _ = quality_score(**{**CAMERA_PHOTO, "date_source": None})
    score, _ = quality_score(**{**CAMERA_PHOTO, "date_source": source})
    assert score - base == point


def test_resolution_and_sharpness_thresholds():
    s = lambda **kw: quality_score(**{**CAMERA_PHOTO, **kw})[0]
    assert s(megapixels=1.5) - s(megapixels=1.49) == 1
    assert s(sharpness=BLURRY_BELOW) - s(sharpness=BLURRY_BELOW - 0.1) == 1
    assert s(sharpness=None) == s(sharpness=BLURRY_BELOW)  # a video: unknown is not blurry

"""A small quality score that sends doubtful files to review instead of the main timeline.

Like PhotoPrism's: a screenshot, a meme saved from a chat or a shaky blurred shot should not
crowd out real photos, but nothing is hidden for good: a low score only sets a review flag the
user can clear. The points reward evidence that a file is a real, wanted photograph.
"""

from __future__ import annotations

from daemon.library.sources import Source

# Variance of the Laplacian on the 512 px grey copy (analysis.sharpness). Sharp photos measure
# ~90 (a soft flower close-up) to 15000 (fine foliage); a Gaussian blur of 3 px on a 720 px view
# brings every sample below 12.
BLURRY_BELOW = 20.0
MIN_MEGAPIXELS = 1.5
RELIABLE_DATE = Source.FILENAME  # a phone's 20190705_153012 name is as good as EXIF in practice
REVIEW_BELOW = 3
MAX_SCORE = 7


def quality_score(
    *,
    favorite: bool,
    date_source: Source | None,
    has_place: bool,
    megapixels: float,
    is_photograph: bool,
    sharpness: float | None,
) -> tuple[int, bool]:
    """(score 0..7, needs review).

    Points:
      +2  favourite: the user said so, which outweighs any guess
      +1  reliable date: source FILENAME or better (not a file-time estimate, not missing)
      +1  reliable place: GPS or a place from a sidecar
      +1  resolution of at least 1.5 megapixels (thumbnails, chat copies and icons are smaller)
      +1  a photograph: camera make or model known, not a screenshot or a drawing
      +1  not blurry: sharpness >= BLURRY_BELOW; unknown sharpness (a video) counts as sharp,
          missing evidence is no proof of blur

    Review when the score is below 3 and the file is not a favourite: a typical camera photo
    scores 4 to 5, a screenshot 2 to 3, a small blurry download 0 to 1.
    """
    score = 0
    if favorite:
        score += 2
    if date_source is not None and date_source >= RELIABLE_DATE:
        score += 1
    if has_place:
        score += 1
    if megapixels >= MIN_MEGAPIXELS:
        score += 1
    if is_photograph:
        score += 1
    if sharpness is None or sharpness >= BLURRY_BELOW:
        score += 1
    score = min(score, MAX_SCORE)
    return score, (score < REVIEW_BELOW and not favorite)

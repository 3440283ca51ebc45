"""Where a metadata value came from, and which source wins.

Every metadata field of a photo is stored with its source. A re-index may replace a value only
with one from the same or a higher source, so a user's manual edit, or a date fixed in a
Lightroom sidecar, survives every later pass over the file.
"""

from __future__ import annotations

import enum


class Source(enum.IntEnum):
    """Priority of a metadata source; higher wins."""

    NONE = 0
    ESTIMATE = 10  # file time, guesses
    FILENAME = 20  # a date in the file name such as 20190705_153012
    JSON = 25  # Google Takeout .json sidecar (fills what EXIF lacks; EXIF from the camera wins)
    EXIF = 30  # EXIF / QuickTime tags embedded by the camera
    XMP = 40  # XMP embedded in the file
    SIDECAR = 50  # an XMP sidecar next to the file (photo.jpg.xmp or photo.xmp)
    MANUAL = 100  # an edit made by a user through the API or the web app

    @classmethod
    def parse(cls, name: str) -> "Source":
        return cls[name.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


def may_replace(current: Source | None, new: Source) -> bool:
    """A value from `new` may overwrite one from `current` (same or higher priority)."""
    return current is None or new >= current

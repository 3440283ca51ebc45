"""The date a phone or app wrote into a file name, for files whose metadata lost it.

Messengers strip EXIF, screenshots never had it, but their names keep the moment:
`IMG_20190705_153012.jpg`, `PXL_20190705_153012345.jpg`, `2019-07-05 15.30.12.jpg`,
`Screenshot_2019-07-05-15-30-12.png`, WhatsApp's `IMG-20190705-WA0001.jpg` (date only).
Only these shapes match: a bare run of digits (a serial number, an invoice number) does not,
and every match must be a real calendar date and time, not in the future.
"""

from __future__ import annotations

import re
from pathlib import PurePath

from daemon.library.metavalues import Stamp, parse_stamp
from daemon.library.sources import Source

# date and time glued or with one separator: 20190705_153012, 20190705-153012, 20190705_153012345
_COMPACT = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})[_\-](\d{2})(\d{2})(\d{2})(\d{3})?(?!\d)")
# separated fields: 2019-07-05 15.30.12, 2019-07-05-15-30-12, 2019-07-05_15-30-12, 2019-07-05T15:30:12
_SPACED = re.compile(
    r"(?<!\d)(\d{4})-(\d{2})-(\d{2})[ _\-T](\d{2})[.\-:h](\d{2})[.\-:m](\d{2})(?:[.,](\d{3}))?(?!\d)"
)
# WhatsApp: IMG-20190705-WA0001, VID-20190705-WA0001 (no time in the name)
_WHATSAPP = re.compile(r"(?:^|[^A-Za-z])(?:IMG|VID|AUD|PTT|STK|DOC)-(\d{4})(\d{2})(\d{2})-WA\d+", re.IGNORECASE)


def date_from_name(name: str | PurePath) -> tuple[str, Source] | None:
    """(taken_at "YYYY-MM-DDTHH:MM:SS[.fff]", Source.FILENAME) from a file name, or None."""
    stamp = stamp_from_name(name)
    return None if stamp is None else (stamp.text(), Source.FILENAME)


def stamp_from_name(name: str | PurePath) -> Stamp | None:
    """The wall-clock moment in a file name (zone unknown), or None."""
    stem = PurePath(name).name
    for pattern in (_COMPACT, _SPACED):
        for m in pattern.finditer(stem):
            year, month, day, hour, minute, second, millis = m.groups()
            text = f"{year}:{month}:{day} {hour}:{minute}:{second}"
            stamp = parse_stamp(text, subsec=millis)
            if stamp is not None:
                return stamp
    m = _WHATSAPP.search(stem)
    if m:
        stamp = parse_stamp(f"{m.group(1)}:{m.group(2)}:{m.group(3)}")
        return stamp
    return None

"""`shoebox export --json FILE`: every photo with all its fields, as one JSON array.

Written as a stream (one photo at a time) to a temporary file that is renamed at the end, so a
library of any size exports in constant memory and a half-written export never replaces a good one.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import IO

from daemon.store.photos import iter_photos


def write_export(conn: sqlite3.Connection, out: IO[str]) -> int:
    count = 0
    out.write("[")
    for photo in iter_photos(conn):
        out.write(",\n" if count else "\n")
        out.write(json.dumps(photo, ensure_ascii=False, sort_keys=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def export_json(conn: sqlite3.Connection, dest: str) -> int:
    """Export to a path ('-' for standard output); returns the number of photos."""
    if dest == "-":
        return write_export(conn, sys.stdout)
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            count = write_export(conn, fh)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    return count

"""Making a rename survive a power cut: the folder that holds the new name must be flushed too."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries to disk (after renaming a finished file into it). Best effort:
    some file systems (network shares) refuse to fsync a folder, and that must not fail the write."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

"""Files only the service user may read: the data directory, the database and the secrets.

Why: the data directory holds the database (password hashes, token hashes, webhook secrets,
share-link passwords, every photo's metadata), the token signing key and, with TLS, the private
keys of the local certificate authority. On a Pi other accounts exist (the default user, a Samba
user, a backup job), and none of them needs any of it. So the data directory is 0700 and the
database files and keys 0600, made so at creation (no moment in which they are readable) and
tightened at start-up when an older version or a copy left them wider.

Not a process-wide umask: the daemon also writes into the library (uploads, imports), and those
files must stay readable for whoever else uses the photo folder.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) and make it 0700 if it is wider."""
    path = Path(path)
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    _tighten(path, PRIVATE_DIR)


def private_file(path: Path) -> None:
    """Make sure `path` exists with mode 0600: created empty if missing (in one step, never
    readable by others), tightened if it is wider."""
    path = Path(path)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        pass
    _tighten(path, PRIVATE_FILE)


def tighten_existing(*paths: Path) -> None:
    """Make those of `paths` that exist 0600 if they are wider (SQLite's -wal and -shm files)."""
    for path in paths:
        try:
            _tighten(Path(path), PRIVATE_FILE)
        except FileNotFoundError:
            continue


def _tighten(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & ~mode & 0o777:
        try:
            os.chmod(path, current & mode)
        except PermissionError:  # not ours (a copy made by root): say so, the daemon still runs
            log.warning("%s has mode %o and cannot be made %o: other accounts may read it", path, current, mode)
            return
        log.warning("%s had mode %o; made it %o (readable by the service user only)", path, current, current & mode)

"""The token signing secret: 32 random bytes made at first start, kept in the data directory.

Why a file and not a setting: a secret in a config file ends up in backups, screenshots and bug
reports. The file is created with mode 0600 in one step (O_CREAT | O_EXCL), so it is never
readable by others, not even for an instant; a copy found with a wider mode is tightened.
Deleting the file logs everyone out (every token becomes invalid) and is the way to do that.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)

SECRET_FILE = "secret.key"
SECRET_BYTES = 32


class SecretError(Exception):
    """The secret file exists but cannot be used."""


def load_or_create_secret(data_dir: Path) -> bytes:
    """The signing secret in data_dir/secret.key, created (mode 0600) if missing."""
    path = Path(data_dir) / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        try:
            os.write(fd, secrets.token_bytes(SECRET_BYTES).hex().encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        log.info("created the token signing secret %s", path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s was readable by others (mode %o); setting it to 0600", path, mode)
        os.chmod(path, 0o600)
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise SecretError(f"{path} is not a Shoebox secret (expected {SECRET_BYTES * 2} hex digits); "
                          "delete it to make a new one (everyone will have to log in again)") from None
    if len(key) < SECRET_BYTES:
        raise SecretError(f"{path} holds {len(key)} bytes, fewer than {SECRET_BYTES}; delete it to make a new one")
    return key

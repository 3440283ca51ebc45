"""The one gate every library file passes through when it is opened: to index it, to read a
sidecar, to serve it as an original.

Why a gate at open time and not only at scan time: a library is a folder other people and
programs write to (a Samba share, Syncthing, a camera import). A file that was an honest photo
when it was indexed can be replaced by a link to `/etc/passwd` or to our own `secret.key` a
minute later; a folder can become a link to another drive. So the check happens each time a file
is opened, on the file that was actually opened:

1. the stored relative path is refused outright if it is absolute, has a `..` part or a NUL byte;
2. the path is resolved (`os.path.realpath`, every link followed) and must lie inside the
   library root or a folder the admin allowed (`[index] allowed_link_targets`), and never inside
   the data folder (database, keys, thumbnails), whatever is allowed;
3. the resolved path is opened with O_NOFOLLOW (its last part can no longer be a link) and the
   kernel's own name of the opened file (`/proc/self/fd/N`) is checked again, so a folder swapped
   for a link between step 2 and the open is caught too; only a regular file passes.

Programs that read by name (ExifTool, ffprobe, ffmpeg, Pillow) get a *pinned* path: a link named
like the original (so extensions and dates in names still work) that points at
`/proc/<pid>/fd/N`, i.e. exactly the file that was checked, not whatever the name leads to now.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import tempfile
import threading
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

log = logging.getLogger(__name__)

_PROC_FD = b"/proc/self/fd"


class OutsideLibrary(PermissionError):
    """A path that leads outside the library (and the allowed folders), or into the data folder.

    A PermissionError, so every caller that already records "cannot read file" for an unreadable
    file records this one the same way (a permanent verdict on the file, with its reason)."""

    def __init__(self, reason: str) -> None:
        super().__init__(errno.EACCES, reason)
        self.reason = reason


@dataclass
class Opened:
    """A library file opened through the gate. Close it (or use it as a context manager)."""

    fd: int
    rel: bytes  # the path relative to the library root, as stored
    real: bytes  # the resolved absolute path that was opened
    stat: os.stat_result

    @property
    def name(self) -> str:
        return os.fsdecode(os.path.basename(self.rel))

    @property
    def proc_path(self) -> Path:
        """A name for exactly this open file, for this process (aiohttp's FileResponse)."""
        return Path(f"/proc/self/fd/{self.fd}")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Opened":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a response that was never sent must not keep the file open
        self.close()


def _real(path: bytes | str | Path) -> bytes:
    return os.path.realpath(os.fsencode(path))


def _inside(path: bytes, folder: bytes) -> bool:
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # one relative, one absolute: never inside
        return False


class Gate:
    """Decides, at the moment of opening, whether a path may be read as part of the library.

    Built once by the App (daemon/app.py) from `library`, `data` and
    `[index] allowed_link_targets`, and handed to the walk, the indexer and the file routes."""

    def __init__(self, root: Path | str, *, allowed: Iterable[Path | str] = (),
                 protected: Iterable[Path | str] = (), scratch: Path | None = None) -> None:
        self.root_path = Path(root)
        self.root = _real(root)
        self.allowed = tuple(_real(p) for p in allowed)
        # a data folder that holds the library (data=/srv, library=/srv/photos) protects only
        # itself, not the library inside it
        self.protected = tuple(p for p in (_real(p) for p in protected) if not _inside(self.root, p))
        self._scratch = scratch
        self._scratch_ready = False
        self._scratch_lock = threading.Lock()
        self._pinning = os.path.isdir(_PROC_FD)

    # -- decisions -----------------------------------------------------------------------------------

    def refusal(self, real: bytes) -> str | None:
        """Why a resolved absolute path may not be read, or None if it may."""
        for folder in self.protected:
            if _inside(real, folder):
                return "it leads into Shoebox's own data folder"
        if _inside(real, self.root):
            return None
        if any(_inside(real, folder) for folder in self.allowed):
            return None
        return "it is a link that leads outside the library (see [index] allowed_link_targets)"

    def allows_target(self, path: bytes | str | Path) -> bool:
        """Whether a path (anywhere, links followed) resolves to somewhere the library may read."""
        try:
            return self.refusal(_real(path)) is None
        except (OSError, ValueError):
            return False

    def locate(self, rel: bytes | str) -> bytes:
        """The absolute (unresolved) path of a stored relative path; refuses absolute paths,
        `..` parts and NUL bytes before anything touches the disk."""
        rel_b = os.fsencode(rel)
        if not rel_b or b"\0" in rel_b or rel_b.startswith(b"/") or b".." in rel_b.split(b"/"):
            raise OutsideLibrary("the path is not a plain path inside the library")
        return os.path.join(self.root, rel_b)

    def relative(self, path: bytes | str | Path) -> bytes:
        """The library-relative form of an absolute path below the (unresolved or resolved) root."""
        p = os.fsencode(path)
        for base in (os.fsencode(self.root_path), self.root):
            if _inside(p, base) and p != base:
                return os.path.relpath(p, base)
        raise OutsideLibrary("the path is not inside the library")

    # -- opening -------------------------------------------------------------------------------------

    def open(self, rel: bytes | str) -> Opened:
        """Open a library file for reading, checked as described in the module docstring.

        Raises OutsideLibrary (a PermissionError) when the file leads outside, FileNotFoundError
        when it is gone, IsADirectoryError/PermissionError for what is not a readable file."""
        rel_b = os.fsencode(rel)
        real = _real(self.locate(rel_b))
        why = self.refusal(real)
        if why is not None:
            log.warning("refused %s: %s", os.fsdecode(rel_b), why)
            raise OutsideLibrary(f"refused: {why}")
        # O_NONBLOCK: a FIFO planted in the library must not hang a worker; regular files ignore it
        fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, "not a regular file") if stat.S_ISDIR(st.st_mode) \
                    else OutsideLibrary("refused: not a regular file")
            opened_as = self._name_of(fd)
            if opened_as is not None:
                why = self.refusal(opened_as)
                if why is not None:  # a folder on the way was swapped for a link after step 2
                    log.warning("refused %s: changed while it was opened; %s", os.fsdecode(rel_b), why)
                    raise OutsideLibrary(f"refused: {why}")
            if st.st_nlink > 1 and self._is_protected_file(st):
                log.warning("refused %s: a hard link to a file of Shoebox's data folder", os.fsdecode(rel_b))
                raise OutsideLibrary("refused: it is a hard link to a file in Shoebox's own data folder")
        except BaseException:
            os.close(fd)
            raise
        return Opened(fd, rel_b, real, st)

    def _is_protected_file(self, st: os.stat_result) -> bool:
        """Whether a file with several names is one of the data folder's own files (the database,
        the signing key, certificates): a hard link has no target to resolve, so it is recognised
        by its inode. Only files with more than one link get here, which photos rarely are."""
        for folder in self.protected:
            try:
                top = list(os.scandir(folder))
            except OSError:
                continue
            entries = [e for e in top if not e.is_dir(follow_symlinks=False)]
            for sub in top:  # one level down (keys, certificates), not the thumbnails
                if sub.is_dir(follow_symlinks=False) and sub.name not in (b"thumbs", "thumbs", b"pins", "pins"):
                    try:
                        entries += [e for e in os.scandir(sub.path) if not e.is_dir(follow_symlinks=False)]
                    except OSError:
                        continue
            for entry in entries:
                try:
                    other = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
                    return True
        return False

    @staticmethod
    def _name_of(fd: int) -> bytes | None:
        try:
            name = os.readlink(b"%s/%d" % (_PROC_FD, fd))
        except OSError:  # no /proc (not Linux): the O_NOFOLLOW open of the resolved path stands
            return None
        return name[: -len(b" (deleted)")] if name.endswith(b" (deleted)") else name

    @contextmanager
    def pinned(self, rel: bytes | str) -> Iterator[Path]:
        """A path for other programs that reads exactly the checked file, named like it.

        The link lives in a private folder (0700) and is removed on exit, with the open file."""
        opened = self.open(rel)
        try:
            if not self._pinning:
                yield Path(os.fsdecode(opened.real))
                return
            folder = tempfile.mkdtemp(prefix="pin-", dir=self._scratch_dir())
            link = os.path.join(folder, opened.name)
            os.symlink(f"/proc/{os.getpid()}/fd/{opened.fd}", link)
            try:
                yield Path(link)
            finally:
                try:
                    os.unlink(link)
                    os.rmdir(folder)
                except OSError:  # something else landed there: remove it all
                    shutil.rmtree(folder, ignore_errors=True)
        finally:
            opened.close()

    def pin_each(self, stack: ExitStack, rels: Iterable[bytes],
                 warnings: list[str]) -> tuple[list[bytes], list[Path]]:
        """Pin several files (a photo's sidecars) for as long as `stack` lives. One that may not be
        read is left out with a warning: a sidecar is a nicety, its photo is indexed all the same.
        Returns (the relative paths kept, their pinned paths)."""
        kept: list[bytes] = []
        paths: list[Path] = []
        for rel in rels:
            try:
                paths.append(stack.enter_context(self.pinned(rel)))
            except OSError as exc:
                warnings.append(f"sidecar {os.fsdecode(os.path.basename(rel))} ignored: {exc.strerror or exc}")
                continue
            kept.append(rel)
        return kept, paths

    def _scratch_dir(self) -> str:
        with self._scratch_lock:  # worker threads pin at the same time
            if self._scratch is None:
                self._scratch = Path(tempfile.mkdtemp(prefix="shoebox-pins-"))
            elif not self._scratch_ready:
                # left-overs of a killed run are links to file descriptors that no longer exist
                shutil.rmtree(self._scratch, ignore_errors=True)
                self._scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._scratch_ready = True
            return str(self._scratch)


__all__ = ["Gate", "Opened", "OutsideLibrary"]

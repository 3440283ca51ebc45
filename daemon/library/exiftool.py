"""A persistent ExifTool process: the only reader that knows MakerNotes, RAW files and QuickTime keys.

Starting Perl and ExifTool costs ~0.3 s, far more than reading one file, so one process is kept
open in `-stay_open` mode and fed argument lists through stdin (`-@ -`). Every command ends with
`-execute{N}`; ExifTool answers `{readyN}` when it is done, so a stray line of output can never be
taken for the answer to another file. All reads run against a deadline (select on the pipes): a
file that makes ExifTool hang costs one timeout and a process restart, never a stuck worker.

One ExifTool object belongs to one thread (the pool makes one per worker); it is not locked.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from daemon.system.lifeline import helper_kwargs

# Options for every metadata read: JSON, family-1 groups ("ExifIFD:ISO", "XMP-dc:Subject"),
# numeric values (-n: 0.004 rather than "1/250", 6 rather than "Rotate 90 CW"), large files.
_READ_OPTIONS = ("-j", "-G1", "-api", "LargeFileSupport=1", "-charset", "filename=utf8")
_STDERR_KEEP = 4096  # bytes of stderr kept per command for the error message


class ExifToolError(Exception):
    """ExifTool could not be started or gave an answer that makes no sense."""


class ExifToolTimeout(ExifToolError):
    """ExifTool took longer than the timeout on one file; the process was killed."""


class ExifTool:
    """One persistent `exiftool -stay_open True -@ -` process. NOT shared between threads:
    the pool creates one per worker thread. Started lazily on first use."""

    def __init__(self, executable: str = "exiftool", timeout: float = 20.0) -> None:
        self.executable = executable
        self.timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._counter = 0
        self.last_stderr = ""  # what ExifTool wrote to stderr for the last command

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> "ExifTool":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten close() must not leave a zombie behind
        try:
            self.close()
        except Exception:
            pass

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._reap()
        try:
            self._proc = subprocess.Popen(
                [self.executable, "-stay_open", "True", "-@", "-"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                **helper_kwargs(),  # killed with the daemon, even by kill -9 (daemon.system.lifeline)
            )
        except OSError as exc:
            raise ExifToolError(f"cannot start {self.executable!r}: {exc}") from exc
        return self._proc

    def close(self) -> None:
        """Ask ExifTool to quit, wait briefly, kill it if it does not; reap it in every case."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.write(b"-stay_open\nFalse\n")
                proc.stdin.flush()
                proc.stdin.close()
            except (OSError, ValueError):
                pass
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._reap()

    def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
            pass

    # -- protocol --------------------------------------------------------------------------------

    def execute(self, args: Sequence[str | bytes], path: Path | str | bytes) -> bytes:
        """Run one ExifTool command on `path` and return its raw stdout.

        The file name goes into the argument stream as bytes (os.fsencode), so names that are
        not valid UTF-8 reach ExifTool unchanged.
        """
        name = os.fsencode(path)
        if b"\n" in name or b"\r" in name:
            raise ExifToolError(f"file name with a line break cannot be passed to exiftool: {path!r}")
        proc = self._start()
        self._counter += 1
        sentinel = b"{ready%d}" % self._counter
        lines = [a if isinstance(a, bytes) else a.encode() for a in args]
        lines += [name, b"-execute%d" % self._counter]
        payload = b"\n".join(lines) + b"\n"
        try:
            assert proc.stdin is not None
            proc.stdin.write(payload)
            proc.stdin.flush()
        except (OSError, ValueError) as exc:
            stderr = self._drain_stderr_now(proc)
            self._reap()
            raise ExifToolError(f"exiftool died before reading {path!r}: {exc} {stderr}".strip()) from exc
        return self._read_answer(proc, sentinel, path)

    def _read_answer(self, proc: subprocess.Popen[bytes], sentinel: bytes, path: Any) -> bytes:
        assert proc.stdout is not None and proc.stderr is not None
        out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        out = bytearray()
        err = bytearray()
        deadline = time.monotonic() + self.timeout
        tail = sentinel + b"\n"
        open_fds = [out_fd, err_fd]
        while True:
            # The sentinel is searched only near the end: binary output may hold any bytes.
            if out.endswith(tail) or out.endswith(sentinel + b"\r\n"):
                end = out.rfind(sentinel)
                # stderr of this command may still be in flight; take what is there now
                err += self._drain_stderr_now(proc).encode()
                self.last_stderr = err[-_STDERR_KEEP:].decode("utf-8", "replace").strip()
                return bytes(out[:end])
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._reap()
                raise ExifToolTimeout(f"exiftool took more than {self.timeout:g} s on {path!s}")
            if not open_fds:
                self._reap()
                raise ExifToolError(f"exiftool exited while reading {path!s}: "
                                    f"{err[-_STDERR_KEEP:].decode('utf-8', 'replace').strip()}")
            ready, _, _ = select.select(open_fds, [], [], remaining)
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:  # EOF: the process is gone
                    open_fds.remove(fd)
                    continue
                if fd == out_fd:
                    out += chunk
                else:
                    err += chunk
                    if len(err) > 4 * _STDERR_KEEP:
                        del err[:-_STDERR_KEEP]

    @staticmethod
    def _drain_stderr_now(proc: subprocess.Popen[bytes]) -> str:
        """Whatever stderr holds right now, without waiting (keeps the pipe from filling up)."""
        if proc.stderr is None:
            return ""
        fd = proc.stderr.fileno()
        data = bytearray()
        try:
            while select.select([fd], [], [], 0)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                data += chunk
        except (OSError, ValueError):
            pass
        return data[-_STDERR_KEEP:].decode("utf-8", "replace")

    # -- public reads ----------------------------------------------------------------------------

    def read(self, path: Path, tags: Sequence[str] | None = None, *, numeric: bool = True) -> dict[str, Any]:
        """Tags of one file as {"Group1:Tag": value}, numeric values unless numeric=False.

        `tags` limits the answer to those tag names (cheaper on big files); None reads all.
        An ExifTool error for the file (not found, unknown format) comes back as the
        "ExifTool:Error" key, as ExifTool reports it, rather than as an exception: the caller
        turns it into a warning.
        """
        args: list[str] = list(_READ_OPTIONS)
        if numeric:
            args.append("-n")
        if tags:
            args += ["-fast"] + [f"-{t}" for t in tags]
        raw = self.execute(args, path)
        text = raw.decode("utf-8", "surrogateescape").strip()
        if not text:
            # ExifTool prints nothing on stdout for a file it cannot read; the reason is on stderr
            reason = self.last_stderr or "no output"
            return {"ExifTool:Error": reason}
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ExifToolError(f"exiftool gave unreadable JSON for {path!s}: {exc}") from exc
        if not isinstance(data, list) or not data or not isinstance(data[0], dict):
            raise ExifToolError(f"exiftool gave unexpected JSON for {path!s}")
        result: dict[str, Any] = data[0]
        result.pop("SourceFile", None)
        return result

    def binary(self, path: Path, tag: str) -> bytes | None:
        """The raw bytes of one binary tag (e.g. "PreviewImage", "JpgFromRaw"), None if absent."""
        data = self.execute(["-b", f"-{tag}", "-api", "LargeFileSupport=1"], path)
        return data or None

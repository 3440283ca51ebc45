"""Helper processes (ExifTool, ffmpeg, ffprobe) die with the daemon, however the daemon dies.

Why: a clean stop closes every helper, but after a kill -9 (or an OOM kill) nothing runs that
could; a persistent `exiftool -stay_open` would wait forever on its stdin pipe as an orphan, and
a long ffmpeg would finish its work for nobody. Linux's parent-death signal solves it in the
child itself: `prctl(PR_SET_PDEATHSIG, SIGKILL)`, set between fork and exec, makes the kernel
kill the child the moment its parent goes.

One catch, and why it is harmless here: the "parent" the kernel watches is the THREAD that
forked the child, not the process. Shoebox starts helpers from the worker pool's threads, which
live as long as the pool (ExifTool is one per worker thread and used only by it), or from a
thread that waits for the helper to finish (ffmpeg, ffprobe). A helper is therefore never
outlived by its thread while it is still wanted; if a thread did end early, its helper would be
killed, which is the safe direction. Do not start a long-lived helper from a short-lived thread.
(At a clean stop the pool's threads end after their last job and before the pool closes its
resources, so the signal ends the idle ExifTools a moment before close() would: harmless for a
helper that only reads.)
"""

from __future__ import annotations

import ctypes
import os
import signal
from typing import Any, Callable

PR_SET_PDEATHSIG = 1

try:
    _prctl: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux: no such safety net
    _prctl = None


def _die_with_parent(parent: int) -> Callable[[], None]:
    def preexec() -> None:  # in the child between fork and exec: keep it minimal
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
    return preexec


def helper_kwargs() -> dict[str, Any]:
    """Keyword arguments for subprocess.Popen/run that tie the child's life to this process."""
    return {"preexec_fn": _die_with_parent(os.getpid()), "close_fds": True}

"""A still frame standing for a video: its thumbnails and analysis are made from it.

About one second in, because a clip's first frame is often black or blurred by the camera still
adjusting exposure; a clip shorter than that gets its first frame. ffmpeg applies the rotation
stored in the container (display matrix / rotate tag) itself, so a phone video held upright
gives an upright poster.
"""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from pathlib import Path

from daemon.library.decode import DecodeError
from daemon.system.lifeline import helper_kwargs

POSTER_OFFSET_S = 1.0


def poster_frame(video: Path, dest_dir: Path, *, ffmpeg: str = "ffmpeg", timeout: float = 60) -> Path:
    """Write a JPEG frame of `video` into dest_dir and return its path.

    Raises DecodeError with ffmpeg's last stderr line when no frame can be had (not a video,
    truncated, unknown codec) or when ffmpeg takes longer than `timeout` seconds.
    """
    video = Path(video)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{video.name}.poster.jpg"
    tmp = dest_dir / f".{video.name}.{uuid.uuid4().hex[:12]}.jpg"
    try:
        err = _grab(video, tmp, POSTER_OFFSET_S, ffmpeg, timeout)
        if not _written(tmp):
            # Shorter than the offset: ffmpeg exits 0 having written nothing. Take frame one.
            err = _grab(video, tmp, None, ffmpeg, timeout)
        if not _written(tmp):
            raise DecodeError(f"no video frame could be decoded: {err or 'ffmpeg wrote nothing'}")
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def _grab(video: Path, out: Path, offset: float | None, ffmpeg: str, timeout: float) -> str:
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    if offset:
        cmd += ["-ss", f"{offset:.3f}"]  # before -i: a fast keyframe seek, then decode to it
    cmd += ["-i", str(video), "-map", "0:v:0", "-frames:v", "1", "-an", "-sn", "-dn",
            "-q:v", "2", "-f", "image2", "-update", "1", str(out)]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False, **helper_kwargs())
    except subprocess.TimeoutExpired as exc:
        raise DecodeError(f"ffmpeg took longer than {timeout:g} s on this video") from exc
    except OSError as exc:
        raise DecodeError(f"cannot run ffmpeg ({ffmpeg}): {exc.strerror or exc}") from exc
    lines = [ln.strip() for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    if proc.returncode != 0:
        if "No space left on device" in last or "Disk quota exceeded" in last:
            # our disk is full, not the video bad: a transient state (daemon.system.diskspace)
            raise OSError(errno.ENOSPC, f"ffmpeg could not write the poster frame: {last}", str(out))
        raise DecodeError(f"ffmpeg failed: {last or f'exit code {proc.returncode}'}")
    return last


def _written(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False

"""What a video file holds: ffprobe for streams and container tags, ExifTool for Apple's keys.

ffprobe knows every container and codec; ExifTool reads QuickTime `Keys` reliably (the Live
Photo content identifier, the local creation date with its zone, the ISO 6709 location) even
where an ffmpeg build drops unknown keys. Both run with a timeout: a broken file costs seconds,
never a stuck worker.

QuickTime/MP4 `creation_time` is UTC by specification. Apple's `creationdate` key holds the
local wall clock and zone, so it is preferred; otherwise the UTC instant is shown in the server's
zone (see metavalues.stamp_from_utc).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.library.exiftool import ExifTool, ExifToolError
from daemon.library.metavalues import (
    clean_position,
    clean_text,
    parse_stamp,
    parse_utc,
    positive,
    stamp_from_utc,
    to_float,
    to_int,
)
from daemon.system.lifeline import helper_kwargs

_ISO6709 = re.compile(r"^\s*([+\-]\d+(?:\.\d+)?)([+\-]\d+(?:\.\d+)?)([+\-]\d+(?:\.\d+)?)?")
APPLE_TAGS = ("ContentIdentifier", "CreationDate", "GPSCoordinates", "Make", "Model", "Software",
              "LocationInformation")


class VideoProbeError(Exception):
    """ffprobe could not read the file (not a video, truncated, timed out); message says why."""


@dataclass
class VideoRead:
    values: list[tuple[str, Any, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, name: str, value: Any, rank: int = 0) -> None:
        if value is not None:
            self.values.append((name, value, rank))


def ffprobe(path: Path, *, executable: str = "ffprobe", timeout: float = 30.0) -> dict[str, Any]:
    """ffprobe's JSON for the format and all streams of `path`."""
    cmd = [executable, "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
           "-i", str(path) if not str(path).startswith("-") else f"file:{path}"]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False, **helper_kwargs())
    except subprocess.TimeoutExpired as exc:
        raise VideoProbeError(f"ffprobe took more than {timeout:g} s on {path}") from exc
    except OSError as exc:
        raise VideoProbeError(f"cannot run {executable!r}: {exc}") from exc
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise VideoProbeError(f"ffprobe cannot read {path.name}: {reason[-1] if reason else done.returncode}")
    try:
        data = json.loads(done.stdout.decode("utf-8", "replace"))
    except json.JSONDecodeError as exc:
        raise VideoProbeError(f"ffprobe gave unreadable JSON for {path.name}: {exc}") from exc
    if not isinstance(data, dict):
        raise VideoProbeError(f"ffprobe gave unexpected JSON for {path.name}")
    return data


def parse_iso6709(value: Any) -> tuple[float, float, float | None] | None:
    """"+37.7749-122.4194+010.000/" -> (lat, lng, alt); None for anything else or (0, 0)."""
    if not isinstance(value, str):
        return None
    m = _ISO6709.match(value)
    if not m:
        return None
    position = clean_position(to_float(m.group(1)), to_float(m.group(2)))
    if position is None:
        return None
    return position[0], position[1], to_float(m.group(3)) if m.group(3) else None


def _rate(value: Any) -> float | None:
    rate = to_float(value)
    return rate if rate is not None and 0 < rate < 1000 else None


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list") or []:
        if isinstance(side, dict) and "rotation" in side:
            return to_int(side.get("rotation")) or 0
    return to_int((stream.get("tags") or {}).get("rotate")) or 0


def fields_from_ffprobe(data: dict[str, Any], result: VideoRead) -> None:
    fmt = data.get("format") or {}
    streams = [s for s in data.get("streams") or [] if isinstance(s, dict)]
    tags = {str(k).lower(): v for k, v in (fmt.get("tags") or {}).items()}

    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not (s.get("disposition") or {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = positive(to_float(fmt.get("duration")))
    if duration is None and video is not None:
        duration = positive(to_float(video.get("duration")))
    result.add("duration", duration)
    if video is not None:
        result.add("video_codec", clean_text(video.get("codec_name")))
        result.add("fps", _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate")))
        width, height = to_int(video.get("width")), to_int(video.get("height"))
        if width and height and width > 0 and height > 0:
            if abs(_rotation(video)) % 180 == 90:  # phones store portrait video turned by 90°
                width, height = height, width
            result.add("width", width)
            result.add("height", height)
    if audio is not None:
        result.add("audio_codec", clean_text(audio.get("codec_name")))

    # the Apple key with the local wall clock and zone beats the UTC creation_time
    result.add("taken_at", parse_stamp(tags.get("com.apple.quicktime.creationdate")), 0)
    utc = parse_utc(tags.get("creation_time"))
    if utc is not None:
        result.add("taken_at", stamp_from_utc(utc), 1)
    for key in ("com.apple.quicktime.location.iso6709", "location", "location-eng"):
        position = parse_iso6709(tags.get(key))
        if position is not None:
            result.add("lat", position[0])
            result.add("lng", position[1])
            result.add("alt", position[2])
            break
    result.add("content_identifier", clean_text(tags.get("com.apple.quicktime.content.identifier")))
    for name in ("make", "model", "software"):
        result.add(name, clean_text(tags.get(f"com.apple.quicktime.{name}") or tags.get(name)), 1)


def fields_from_exiftool(tags: dict[str, Any], result: VideoRead) -> None:
    """Apple's QuickTime keys as ExifTool reads them (ahead of ffprobe's copies: rank 0)."""
    def pick(name: str) -> Any:
        for group in ("Keys", "UserData", "ItemList", "QuickTime"):
            if f"{group}:{name}" in tags:
                return tags[f"{group}:{name}"]
        return None

    result.add("content_identifier", clean_text(pick("ContentIdentifier")), 0)
    stamp = parse_stamp(pick("CreationDate"))
    if stamp is not None and stamp.offset is not None:
        result.add("taken_at", stamp, 0)
    coordinates = pick("GPSCoordinates")
    if isinstance(coordinates, str):  # with -n: "37.7749 -122.4194 10"
        parts = [to_float(p) for p in coordinates.replace(",", " ").split()]
        if len(parts) >= 2 and parts[0] is not None and parts[1] is not None:
            position = clean_position(parts[0], parts[1])
            if position is not None:
                result.add("lat", position[0], 0)
                result.add("lng", position[1], 0)
                if len(parts) > 2 and parts[2] is not None:
                    result.add("alt", parts[2], 0)
    for name in ("Make", "Model", "Software"):
        result.add(name.lower(), clean_text(pick(name)), 0)


def read_video(path: Path, *, exiftool: ExifTool | None, ffprobe_executable: str = "ffprobe",
               timeout: float = 30.0) -> VideoRead:
    """Duration, codecs, fps, size after rotation, date, place and Live Photo id of a video.

    Problems (ffprobe cannot parse, ExifTool timeout) become warnings: what the other tool
    read is still returned.
    """
    result = VideoRead()
    try:
        fields_from_ffprobe(ffprobe(path, executable=ffprobe_executable, timeout=timeout), result)
    except VideoProbeError as exc:
        result.warnings.append(str(exc))
    if exiftool is not None:
        try:
            tags = exiftool.read(path, APPLE_TAGS)
        except ExifToolError as exc:
            result.warnings.append(str(exc))
        else:
            if "ExifTool:Error" in tags:
                result.warnings.append(f"exiftool: {tags['ExifTool:Error']}")
            fields_from_exiftool(tags, result)
    return result

"""Videos: clips made with the real ffmpeg, read with the real ffprobe and ExifTool."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest

from daemon.library.exiftool import ExifTool
from daemon.library.metadata import read_metadata
from daemon.library.sources import Source
from daemon.library.videoprobe import VideoProbeError, ffprobe, parse_iso6709, read_video

LIVE_ID = "570F1469-09C7-4E50-9875-05F21D5BD166"  # the MediaGroupUUID of exif-samples/heic/IMG_5195.HEIC


@pytest.fixture(scope="module")
def exiftool():
    with ExifTool(timeout=30) as et:
        yield et


def make_clip(path: Path, *extra: str, size: str = "320x240", seconds: float = 2, audio: bool = True) -> Path:
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=30"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440"]
    cmd += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio:
        cmd += ["-c:a", "aac"]
    subprocess.run([*cmd, *extra, str(path)], check=True)
    return path


def test_mp4_duration_codecs_size_and_utc_date(tmp_path: Path, exiftool: ExifTool) -> None:
    clip = make_clip(tmp_path / "clip.mp4", "-metadata", "creation_time=2019-07-05T13:30:12.000000Z")
    meta = read_metadata(clip, exiftool=exiftool)
    assert meta.get("duration") == pytest.approx(2.0, abs=0.05)
    assert meta.get("video_codec") == "h264"
    assert meta.get("audio_codec") == "aac"
    assert meta.get("fps") == pytest.approx(30.0)
    assert (meta.get("width"), meta.get("height")) == (320, 240)
    # creation_time is UTC: the instant is kept exactly, shown in the server's zone
    assert meta.get("taken_at_utc") == "2019-07-05T13:30:12Z"
    local = dt.datetime(2019, 7, 5, 13, 30, 12, tzinfo=dt.timezone.utc).astimezone()
    assert meta.get("taken_at") == local.replace(tzinfo=None).isoformat(timespec="seconds")
    assert meta.get("taken_offset") == local.utcoffset().total_seconds() // 60
    assert meta.source("taken_at") is Source.EXIF
    assert meta.get("mime") == "video/mp4"


def test_live_photo_movie_pairs_with_its_still(samples: Path, tmp_path: Path, exiftool: ExifTool) -> None:
    movie = make_clip(tmp_path / "IMG_5195.MOV",
                      "-metadata", f"com.apple.quicktime.content.identifier={LIVE_ID}",
                      "-metadata", "com.apple.quicktime.location.ISO6709=+39.0513-094.2888+260.561/",
                      "-metadata", "com.apple.quicktime.creationdate=2021-04-11T15:47:53-0500",
                      "-metadata", "creation_time=2021-04-11T20:47:53Z",
                      "-movflags", "use_metadata_tags", seconds=1)
    video = read_metadata(movie, exiftool=exiftool)
    still = read_metadata(samples / "exif-samples/heic/IMG_5195.HEIC", exiftool=exiftool)
    assert video.get("content_identifier") == still.get("content_identifier") == LIVE_ID
    # Apple's creationdate has the local clock and zone: same moment as the still's EXIF
    assert video.get("taken_at") == still.get("taken_at") == "2021-04-11T15:47:53"
    assert video.get("taken_offset") == still.get("taken_offset") == -300
    assert (video.get("lat"), video.get("lng")) == (pytest.approx(39.0513), pytest.approx(-94.2888))


def test_content_identifier_without_exiftool(tmp_path: Path) -> None:
    # ExifTool 12.57 cannot write Keys:ContentIdentifier; ffmpeg writes the Apple key, and
    # ffprobe alone reads it back when no ExifTool is at hand
    movie = make_clip(tmp_path / "live.mov", "-metadata", f"com.apple.quicktime.content.identifier={LIVE_ID}",
                      "-movflags", "use_metadata_tags", seconds=1, audio=False)
    assert read_metadata(movie, exiftool=None).get("content_identifier") == LIVE_ID
    assert ("content_identifier", LIVE_ID, 0) in read_video(movie, exiftool=None).values


def test_android_location_and_portrait_rotation(tmp_path: Path, exiftool: ExifTool) -> None:
    clip = make_clip(tmp_path / "VID_20190705_153012.mp4", "-metadata", "location=+48.8584+002.2945/",
                     size="320x240", seconds=1, audio=False)
    # a phone held upright stores landscape frames plus a display matrix turning them
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-Rotation=90", str(clip)], check=True)
    meta = read_metadata(clip, exiftool=exiftool)
    assert (meta.get("lat"), meta.get("lng")) == (pytest.approx(48.8584), pytest.approx(2.2945))
    assert (meta.get("width"), meta.get("height")) == (240, 320)  # shown upright
    assert meta.get("audio_codec") is None
    # no creation_time in the file: the name's date is the next best
    assert meta.get("taken_at") == "2019-07-05T15:30:12"
    assert meta.source("taken_at") is Source.FILENAME


def test_hevc_codec_name(tmp_path: Path) -> None:
    clip = tmp_path / "hevc.mp4"
    done = subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25",
                           "-t", "1", "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=none",
                           "-tag:v", "hvc1", str(clip)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"this ffmpeg has no libx265 encoder: {done.stderr.decode()[-200:]}")
    meta = read_metadata(clip, exiftool=None)
    assert meta.get("video_codec") == "hevc"
    assert meta.get("fps") == pytest.approx(25.0)


def test_broken_video_is_a_warning_not_a_crash(tmp_path: Path, exiftool: ExifTool) -> None:
    clip = make_clip(tmp_path / "whole.mp4", seconds=1)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[:200])
    meta = read_metadata(cut, exiftool=exiftool, mtime=1_600_000_000.0)
    assert meta.get("duration") is None
    assert meta.source("taken_at") is Source.ESTIMATE
    assert any("ffprobe cannot read cut.mp4" in w for w in meta.warnings)
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    assert read_metadata(empty, exiftool=exiftool).warnings


def test_ffprobe_timeout_and_missing_binary(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", seconds=1, audio=False)
    with pytest.raises(VideoProbeError, match="took more than"):
        ffprobe(clip, timeout=0.001)
    with pytest.raises(VideoProbeError, match="cannot run"):
        ffprobe(clip, executable="/nonexistent/ffprobe")


def test_iso6709() -> None:
    assert parse_iso6709("+37.7749-122.4194+010.000/") == (37.7749, -122.4194, 10.0)
    assert parse_iso6709("-33.8688+151.2093/") == (-33.8688, 151.2093, None)
    assert parse_iso6709("+00.0000+000.0000/") is None  # no fix
    assert parse_iso6709("+95.0+010.0/") is None
    assert parse_iso6709("garbage") is None

"""Video poster frames made by the real ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daemon.library.decode import DecodeError, DecodeLimits
from daemon.library.formats import Kind
from daemon.library.poster import poster_frame
from daemon.library.render import render
from daemon.library.thumbnails import ThumbSettings


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True, timeout=60)


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    out = tmp_path / "clip.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=640x360:rate=25", "-t", "2", "-pix_fmt", "yuv420p", str(out))
    return out


def test_poster_is_a_jpeg_about_one_second_in(clip, tmp_path):
    poster = poster_frame(clip, tmp_path / "out")
    with Image.open(poster) as im:
        assert im.format == "JPEG" and im.size == (640, 360)
        frame = np.asarray(im.convert("RGB"), dtype=np.int16)
    first = tmp_path / "first.png"
    second = tmp_path / "second.png"
    _ffmpeg("-i", str(clip), "-frames:v", "1", str(first))
    _ffmpeg("-ss", "1", "-i", str(clip), "-frames:v", "1", str(second))
    # testsrc prints a running counter: the poster is the frame at 1 s, not the first one
    diff_first = np.abs(frame - np.asarray(Image.open(first).convert("RGB"), dtype=np.int16)).mean()
    diff_second = np.abs(frame - np.asarray(Image.open(second).convert("RGB"), dtype=np.int16)).mean()
    assert diff_second < 3 < diff_first


def _display_rotation(video: Path) -> int:
    """The rotation the container declares, as ffprobe reports it (degrees counter-clockwise)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream_side_data=rotation", "-of", "csv=p=0", str(video)],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return int(float(out.split()[0]))


@pytest.mark.parametrize("tag", ["90", "270"])
def test_rotated_video_gives_an_upright_poster(clip, tmp_path, tag):
    rotated = tmp_path / "rotated.mp4"
    _ffmpeg("-i", str(clip), "-c", "copy", "-metadata:s:v", f"rotate={tag}", str(rotated))
    turn = _display_rotation(rotated)
    assert turn % 180 == 90
    plain = Image.open(poster_frame(clip, tmp_path / "a")).convert("RGB")
    with Image.open(poster_frame(rotated, tmp_path / "b")) as im:
        assert im.size == (360, 640)
        turned = np.asarray(im.convert("RGB"), dtype=np.int16)
    expected = np.asarray(plain.rotate(turn, expand=True), dtype=np.int16)  # PIL: counter-clockwise
    wrong = np.asarray(plain.rotate(turn + 180, expand=True), dtype=np.int16)
    assert np.abs(turned - expected).mean() < 4 < np.abs(turned - wrong).mean()


def test_clip_shorter_than_a_second_gets_its_first_frame(tmp_path):
    short = tmp_path / "short.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "0.4", "-pix_fmt", "yuv420p", str(short))
    with Image.open(poster_frame(short, tmp_path / "out")) as im:
        assert im.size == (320, 240)


def test_not_a_video_raises_decode_error_with_ffmpegs_reason(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(DecodeError, match="ffmpeg failed: .*Invalid data"):
        poster_frame(bad, tmp_path / "out")
    assert not any((tmp_path / "out").iterdir())  # no temp file left behind


def test_missing_ffmpeg_is_a_decode_error(clip, tmp_path):
    with pytest.raises(DecodeError, match="cannot run ffmpeg"):
        poster_frame(clip, tmp_path / "out", ffmpeg=str(tmp_path / "no-ffmpeg"))


def test_render_video_makes_thumbnails_from_the_poster(clip, tmp_path):
    r = render(clip, kind=Kind.VIDEO, content_hash="0123abcd", thumbs_root=tmp_path / "t",
               settings=ThumbSettings(), limits=DecodeLimits())
    assert (r.width, r.height) == (640, 360)
    assert set(r.timings) == {"poster", "decode", "thumbs", "analysis"}
    with Image.open(r.thumbs["fit_720"]) as im:
        assert im.size == (640, 360)
    with Image.open(r.thumbs["tile_224"]) as im:
        assert im.size == (224, 224)
    assert r.analysis.shape == "landscape" and not r.analysis.mono
    # the poster's temporary directory is gone, only thumbnails remain
    assert {p.suffix for p in (tmp_path / "t").rglob("*") if p.is_file()} == {".jpg"}
    assert not [p for p in (tmp_path / "t").iterdir() if p.name.startswith(".poster-")]

"""Motion photos: finding and extracting the video a phone hides in a still."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import pytest

from daemon.library.decode import DecodeError
from daemon.library.motion import MotionVideo, NoMotionVideo, extract_motion_video, find_motion_video
from tests.conftest import copy_sample

SAMSUNG = "immich-test-assets/formats/motionphoto/samsung-one-ui-6.heic"
STILL = "exif-samples/jpg/orientation/landscape_1.jpg"


def _probe(video: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type",
                          "-of", "json", str(video)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def mp4(tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("mp4") / "clip.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
                    "-i", "testsrc=size=320x240:rate=25", "-t", "1", "-pix_fmt", "yuv420p", str(out)],
                   check=True, timeout=60)
    return out.read_bytes()


def _with_xmp(jpeg: bytes, xmp: str) -> bytes:
    """Insert an XMP APP1 segment right after the JPEG's SOI, as cameras write it."""
    body = b"http://ns.adobe.com/xap/1.0/\x00" + xmp.encode()
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def test_samsung_heic_motion_photo_is_found_and_extracted(samples, tmp_path):
    src = copy_sample(samples, SAMSUNG, tmp_path)
    found = find_motion_video(src)
    assert found == MotionVideo(offset=452284, length=3226469, source="samsung")
    video = extract_motion_video(src, tmp_path / "out" / "motion.mp4")
    assert video.stat().st_size == found.length
    info = _probe(video)
    assert float(info["format"]["duration"]) > 0
    assert "video" in {s["codec_type"] for s in info["streams"]}
    assert [p.name for p in video.parent.iterdir()] == ["motion.mp4"]  # no temp file left


@pytest.mark.parametrize("rel", [STILL, "immich-test-assets/formats/heic/IMG_2682.heic",
                                 "exif-samples/jpg/hdr/iphone_hdr_NO.jpg", "exif-samples/jpg/corrupted.jpg",
                                 "immich-test-assets/formats/png/density_plot.png"])
def test_plain_stills_are_not_motion_photos(samples, tmp_path, rel):
    assert find_motion_video(copy_sample(samples, rel, tmp_path)) is None


def test_extract_from_a_plain_still_is_a_clear_error(samples, tmp_path):
    src = copy_sample(samples, STILL, tmp_path)
    with pytest.raises(NoMotionVideo, match="no embedded motion video"):
        extract_motion_video(src, tmp_path / "x.mp4")
    assert issubclass(NoMotionVideo, DecodeError)
    assert not (tmp_path / "x.mp4").exists()


def test_mp4_appended_after_jpeg_end_is_found(samples, tmp_path, mp4):
    src = tmp_path / "MVIMG_0001.jpg"
    still = (samples / STILL).read_bytes()
    src.write_bytes(still + mp4)
    assert find_motion_video(src) == MotionVideo(offset=len(still), length=len(mp4), source="trailer")
    assert extract_motion_video(src, tmp_path / "v.mp4").read_bytes() == mp4


def test_google_micro_video_offset_written_by_exiftool(samples, tmp_path, mp4):
    src = copy_sample(samples, STILL, tmp_path, name="MVIMG_0002.jpg")
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-GCamera:MicroVideo=1",
                    f"-XMP-GCamera:MicroVideoOffset={len(mp4)}", str(src)], check=True, timeout=30)
    still_len = src.stat().st_size
    with open(src, "ab") as f:
        f.write(mp4)
    assert find_motion_video(src) == MotionVideo(offset=still_len, length=len(mp4), source="google")
    assert float(_probe(extract_motion_video(src, tmp_path / "v.mp4"))["format"]["duration"]) > 0


def test_google_container_directory_with_padding(samples, tmp_path, mp4):
    padding = b"\x00" * 16  # Item:Length counts the padding after the video
    xmp = f"""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
      <rdf:Description rdf:about="" xmlns:GCamera="http://ns.google.com/photos/1.0/camera/"
        xmlns:Container="http://ns.google.com/photos/1.0/container/"
        xmlns:Item="http://ns.google.com/photos/1.0/container/item/" GCamera:MotionPhoto="1">
      <Container:Directory><rdf:Seq>
        <rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg" Item:Semantic="Primary" Item:Length="0"/></rdf:li>
        <rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="video/mp4" Item:Semantic="MotionPhoto"
          Item:Length="{len(mp4) + len(padding)}" Item:Padding="{len(padding)}"/></rdf:li>
      </rdf:Seq></Container:Directory></rdf:Description></rdf:RDF></x:xmpmeta>"""
    still = _with_xmp((samples / STILL).read_bytes(), xmp)
    src = tmp_path / "PXL_0003.MP.jpg"
    src.write_bytes(still + mp4 + padding)
    assert find_motion_video(src) == MotionVideo(offset=len(still), length=len(mp4), source="google")


def test_garbage_after_the_jpeg_is_not_a_video(samples, tmp_path):
    src = tmp_path / "junk.jpg"
    # bytes that even contain 'ftyp', but no valid MP4 box structure around it
    src.write_bytes((samples / STILL).read_bytes() + b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    assert find_motion_video(src) is None


def test_unreadable_or_tiny_files_are_simply_not_motion_photos(tmp_path):
    assert find_motion_video(tmp_path / "missing.jpg") is None
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    assert find_motion_video(empty) is None
    stub = tmp_path / "stub.heic"
    stub.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")
    assert find_motion_video(stub) is None

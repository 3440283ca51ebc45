"""Live Photos and motion photos: a still and its short video are one photo with two files."""

from __future__ import annotations

import subprocess
from pathlib import Path

from daemon.library.motion import extract_motion_video
from tests.conftest import copy_sample
from tests.integration.support import by_path, index, make_config, photos

# IMG_5195.HEIC carries Apple's MakerNotes id (ExifTool: Apple:MediaGroupUUID) that the paired
# QuickTime file repeats as com.apple.quicktime.content.identifier.
APPLE_ID = "570F1469-09C7-4E50-9875-05F21D5BD166"


def make_clip(dest: Path, seconds: float, *, content_id: str | None = None) -> Path:
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15",
           "-t", str(seconds), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "ultrafast"]
    if content_id:
        cmd += ["-metadata", f"com.apple.quicktime.content.identifier={content_id}", "-movflags", "use_metadata_tags"]
    subprocess.run([*cmd, str(dest)], check=True, timeout=120)
    return dest


async def test_live_photo_pairs_by_content_identifier_and_by_name(library: Path, tmp_path: Path, samples: Path) -> None:
    # 1. paired by the Apple content identifier, whatever the names
    copy_sample(samples, "exif-samples/heic/IMG_5195.HEIC", library / "iphone")
    make_clip(library / "iphone" / "IMG_E5195_live.MOV", 2, content_id=APPLE_ID)
    # 2. paired by the same base name (an export without the identifier)
    copy_sample(samples, "exif-samples/jpg/gps/DSCN0010.jpg", library / "export", "IMG_0042.JPG")
    make_clip(library / "export" / "IMG_0042.MOV", 2)
    # 3. a real clip that only shares a name with a photo stays its own item
    copy_sample(samples, "exif-samples/jpg/gps/DSCN0012.jpg", library / "export", "DSC_0100.JPG")
    make_clip(library / "export" / "DSC_0100.MOV", 15)

    data = tmp_path / "data"
    await index(make_config(library, data))
    p = by_path(data)

    live = p["iphone/IMG_5195.HEIC"]
    assert live["type"] == "live"
    assert sorted((f["path"], f["role"]) for f in live["files"]) == [
        ("iphone/IMG_5195.HEIC", "primary"), ("iphone/IMG_E5195_live.MOV", "live")]
    assert live["content_identifier"] == APPLE_ID
    assert live["make"] == "Apple", "the still's metadata must win over the video's"
    assert live["duration"] == 2.0, "the video's duration fills what the still lacks"

    named = p["export/IMG_0042.JPG"]
    assert named["type"] == "live" and {f["path"] for f in named["files"]} == {"export/IMG_0042.JPG", "export/IMG_0042.MOV"}

    assert p["export/DSC_0100.JPG"]["id"] != p["export/DSC_0100.MOV"]["id"]
    assert p["export/DSC_0100.MOV"]["type"] == "video"
    assert p["export/DSC_0100.MOV"]["duration"] == 15.0
    assert len(photos(data)) == 4


async def test_video_is_indexed_with_a_poster_and_its_metadata(library: Path, tmp_path: Path) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25",
                    "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "ultrafast",
                    "-metadata", "creation_time=2021-06-01T10:20:30Z", str(library / "clip.mp4")], check=True)
    data = tmp_path / "data"
    await index(make_config(library, data))
    clip = by_path(data)["clip.mp4"]
    assert clip["type"] == "video"
    assert (clip["width"], clip["height"]) == (640, 360)
    assert clip["duration"] == 3.0 and clip["video_codec"] == "h264"
    assert clip["taken_at_utc"] == "2021-06-01T10:20:30Z" or clip["taken_at"].startswith("2021-06-01")
    assert clip["thumb_key"] and clip["placeholder"]


async def test_motion_photo_is_detected_and_its_video_extracted(library: Path, tmp_path: Path, samples: Path) -> None:
    src = copy_sample(samples, "immich-test-assets/formats/motionphoto/samsung-one-ui-6.heic", library)
    data = tmp_path / "data"
    await index(make_config(library, data))
    photo = by_path(data)["samsung-one-ui-6.heic"]
    assert photo["type"] == "live"
    assert photo["motion_video"]["length"] > 10_000
    out = extract_motion_video(src, tmp_path / "motion.mp4")
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(out)],
                           capture_output=True, text=True, check=True)
    assert float(probe.stdout.strip()) > 0.5

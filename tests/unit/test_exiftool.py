"""The persistent ExifTool process: real exiftool, real files, real hangs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from daemon.library.exiftool import ExifTool, ExifToolError, ExifToolTimeout
from tests.conftest import copy_sample

CANON = "exif-samples/jpg/Canon_40D.jpg"
NIKON_GPS = "exif-samples/jpg/gps/DSCN0010.jpg"


@pytest.fixture
def exiftool():
    with ExifTool(timeout=20) as et:
        yield et


def test_read_gives_grouped_numeric_tags(samples: Path, exiftool: ExifTool) -> None:
    tags = exiftool.read(samples / CANON)
    # values from `exiftool -j -n -G1 Canon_40D.jpg`
    assert tags["IFD0:Make"] == "Canon"
    assert tags["IFD0:Model"] == "Canon EOS 40D"
    assert tags["ExifIFD:DateTimeOriginal"] == "2008:05:30 15:56:01"
    assert tags["ExifIFD:ExposureTime"] == 0.00625
    assert tags["ExifIFD:FNumber"] == 7.1
    assert "SourceFile" not in tags


def test_one_process_serves_many_reads_in_order(samples: Path, exiftool: ExifTool) -> None:
    models = [exiftool.read(samples / rel)["IFD0:Model"] for rel in (CANON, NIKON_GPS, CANON, NIKON_GPS)]
    assert models == ["Canon EOS 40D", "COOLPIX P6000", "Canon EOS 40D", "COOLPIX P6000"]
    pid = exiftool._proc.pid  # noqa: SLF001 - the same process answered all four
    exiftool.read(samples / CANON)
    assert exiftool._proc.pid == pid  # noqa: SLF001


def test_selected_tags_in_print_form(samples: Path, exiftool: ExifTool) -> None:
    tags = exiftool.read(samples / "exif-samples/jpg/tests/42_IndexError.jpg", ["LensID"], numeric=False)
    assert tags == {"Composite:LensID": "Olympus M.Zuiko Digital 14-42mm F3.5-5.6 II R"}


def test_binary_tag_returns_the_embedded_jpeg(samples: Path, exiftool: ExifTool) -> None:
    thumb = exiftool.binary(samples / NIKON_GPS, "ThumbnailImage")
    assert thumb is not None and thumb.startswith(b"\xff\xd8") and thumb.endswith(b"\xff\xd9")
    assert exiftool.binary(samples / CANON, "PreviewImage") is None
    # the stream stays in step after binary output
    assert exiftool.read(samples / CANON)["IFD0:Model"] == "Canon EOS 40D"


def test_missing_file_is_reported_not_raised(tmp_path: Path, exiftool: ExifTool) -> None:
    tags = exiftool.read(tmp_path / "gone.jpg")
    assert "File not found" in tags["ExifTool:Error"]


def test_file_name_with_invalid_utf8_bytes(samples: Path, tmp_path: Path, exiftool: ExifTool) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9-\xff.jpg"
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, (samples / CANON).read_bytes())
    os.close(fd)
    path = Path(os.fsdecode(raw))
    assert exiftool.read(path)["IFD0:Model"] == "Canon EOS 40D"


def test_name_with_line_break_is_refused_clearly(tmp_path: Path, exiftool: ExifTool) -> None:
    with pytest.raises(ExifToolError, match="line break"):
        exiftool.read(tmp_path / "a\nb.jpg")


def test_a_slow_read_times_out_and_the_next_call_works(samples: Path) -> None:
    # exiftool refuses FIFOs, so a real timeout comes from a deadline shorter than Perl's start
    # (tens of milliseconds on any machine) with a 2 MB phone photo
    photo = samples / "exif-samples/jpg/mobile/HMD_Nokia_8.3_5G.jpg"
    with ExifTool(timeout=0.005) as et:
        with pytest.raises(ExifToolTimeout, match="HMD_Nokia_8.3_5G.jpg"):
            et.read(photo)
        assert not et.running
        et.timeout = 20
        assert et.read(photo)["IFD0:Make"] == "HMD Global"
        pid = et._proc.pid  # noqa: SLF001
        et.timeout = 0.000001
        with pytest.raises(ExifToolTimeout):
            et.read(photo)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # the hung process was killed and reaped, not left as a zombie
        et.timeout = 20
        assert et.read(samples / CANON)["IFD0:Model"] == "Canon EOS 40D"


def test_an_executable_that_never_answers_times_out(samples: Path, tmp_path: Path) -> None:
    script = tmp_path / "slow-exiftool"
    script.write_text("#!/bin/sh\nexec sleep 60\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    et = ExifTool(executable=str(script), timeout=0.5)
    with pytest.raises(ExifToolTimeout, match="Canon_40D.jpg"):
        et.read(samples / CANON)
    assert not et.running
    with pytest.raises(ExifToolTimeout):  # restarted lazily, times out again, no hang
        et.read(samples / CANON)
    et.close()


def test_missing_executable_is_a_clear_error(samples: Path) -> None:
    with pytest.raises(ExifToolError, match="cannot start"):
        ExifTool(executable="/nonexistent/exiftool").read(samples / CANON)


def test_close_ends_the_process(samples: Path, tmp_path: Path) -> None:
    et = ExifTool()
    et.read(copy_sample(samples, CANON, tmp_path))
    proc = et._proc  # noqa: SLF001
    et.close()
    assert proc is not None and proc.returncode is not None  # exited and reaped
    assert not et.running
    assert et.read(samples / CANON)["IFD0:Make"] == "Canon"  # and starts again on demand
    et.close()

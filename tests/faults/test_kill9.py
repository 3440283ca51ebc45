"""kill -9 of `shoebox serve` mid-index: no helper process outlives the daemon, and the next start
leaves no temporary file of any kind behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from daemon.system.durable import TEMP_KINDS, temp_kind
from tests.faults.fs import marked_processes, noise_photos
from tests.integration.api_support import Daemon, create_admin
from tests.waiting import wait_until

# slow: a fault test: kill -9 of a real shoebox serve
pytestmark = pytest.mark.slow

# A long ffmpeg run, as a big video's poster frame would be: the real ffmpeg, decoding a generated
# clip in real time for minutes (exec: it is the process the daemon started, not a child of a shell).
SLOW_FFMPEG = """#!/bin/sh
exec ffmpeg -nostdin -hide_banner -loglevel error -re -f lavfi -i testsrc=size=64x64:rate=5:duration=300 -f null -
"""


def make_video(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=320x240:rate=10:duration=3", "-pix_fmt", "yuv420p", str(path)],
                   check=True, capture_output=True, timeout=60)


def leftovers(data: Path, library: Path) -> list[str]:
    """Every file or folder below data and library whose name is a registered temporary name."""
    found = []
    for root, where in ((data, "data"), (library, "library")):
        for folder, dirs, names in os.walk(root):
            for name in dirs + names:
                if temp_kind(name, where) is not None:
                    found.append(os.path.join(folder, name))
    return found


def plant_one_of_each(data: Path, library: Path) -> list[Path]:
    """What a killed run leaves behind, one of every kind in daemon.system.durable.TEMP_KINDS."""
    hexa = uuid.uuid4().hex
    planted = [
        data / "thumbs" / "ab" / "cd" / f".abcd_fit_720_0123456789.jpg.{hexa[:12]}.tmp",  # a thumbnail write
        data / f".places.db.{hexa[:12]}.tmp",  # the half-built places database ...
        data / f".places.db.{hexa[:12]}.tmp-journal",  # ... and its journal
        data / "imports" / f".01HX.json.{hexa[:12]}.tmp",  # an import report
        data / "thumbs" / f".poster-{hexa[:8]}" / f".clip.mov.{hexa[:12]}.jpg",  # a poster frame folder
        data / "pins" / f"pin-{hexa[:8]}" / "IMG_0001.jpg",  # a pinned link's folder (the gate)
        library / "Uploads" / ".shoebox-incoming" / f".shoebox-upload-{hexa[:16]}.part.jpg",  # an upload
        library / "2024" / "05" / f".shoebox-import-{hexa[:16]}.part.heic",  # an import copy
    ]
    past = time.time() - 120
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half written")
        os.utime(path, (past, past))
    folders = {planted[4].parent, planted[5].parent}
    for folder in folders:
        os.utime(folder, (past, past))
    named = [(p.parent if p.parent in folders else p, "library" if library in p.parents else "data")
             for p in planted]
    assert {temp_kind(p.name, where) for p, where in named} == set(TEMP_KINDS), "one of every registered kind"
    return planted


def test_kill_9_leaves_no_helper_process_and_no_temporary_file(tmp_path: Path) -> None:
    library, data = tmp_path / "library", tmp_path / "data"
    noise_photos(library / "photos", 30)
    make_video(library / "clips" / "clip.mp4")
    slow = tmp_path / "slow-ffmpeg"
    slow.write_text(SLOW_FFMPEG)
    slow.chmod(0o755)
    create_admin(library, data)
    marker = f"SHOEBOX_KILL9_TEST_{uuid.uuid4().hex}"
    d = Daemon(library, data, "--index-ffmpeg", str(slow), env={"KILL9_MARKER": marker})
    with d:
        assert d.proc is not None

        def helpers() -> set[str]:
            return {name for pid, name in marked_processes(marker) if pid != d.proc.pid}

        running = wait_until(lambda: {"exiftool", "ffmpeg"} <= helpers() and helpers(), timeout=90,
                             what="an exiftool and an ffmpeg started by the daemon")
        assert "exiftool" in running and "ffmpeg" in running
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(timeout=30)
        # the kernel kills them with their parent: nothing of the daemon's lives on
        wait_until(lambda: not marked_processes(marker), timeout=10,
                   what="the helpers to die with the daemon")

    planted = plant_one_of_each(data, library)
    keep = library / "photos" / ".notes.tmp"  # a user's own hidden file is not ours to delete
    keep.write_text("mine")
    os.utime(keep, (time.time() - 120,) * 2)

    with Daemon(library, data, env={"KILL9_MARKER": marker}) as again:
        wait_until(lambda: not any(p.exists() for p in planted), timeout=30,
                   what="the temporary files of the killed run to be swept")
        assert keep.read_text() == "mine"
        assert "did not stop cleanly" in again.stderr()
    assert leftovers(data, library) == []
    # a clean stop leaves no helper either
    wait_until(lambda: not marked_processes(marker), timeout=10, what="the helpers to stop with the daemon")

"""Real file systems a fault test mounts itself (tmpfs of a few MB for a full disk), real
processes to watch, and photos big enough to fill them. Needs root, as CI runs."""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs the suite as root)")


@contextmanager
def tmpfs(path: Path, size: str, *, options: str = "") -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "40m") mounted at path for the block; always unmounted after."""
    require_root()
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (f",{options}" if options else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True, capture_output=True)
    try:
        yield path
    finally:
        done = subprocess.run(["umount", str(path)], capture_output=True)
        if done.returncode != 0:  # something still holds it: detach now, the kernel frees it later
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def resize(path: Path, size: str) -> None:
    """Give a mounted tmpfs more room: the closest thing to a user deleting files elsewhere."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True, capture_output=True)


def fill(path: Path) -> Path:
    """Write a file into path until the disk is full; returns it."""
    filler = path / "filler.bin"
    block = b"\0" * (1 << 20)
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(block)
                fh.flush()
        except OSError:
            pass
    try:
        with open(filler, "ab") as fh:  # the last partial page
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
    except OSError:
        pass
    return filler


def noise_photos(folder: Path, count: int, size: tuple[int, int] = (1600, 1200), prefix: str = "IMG") -> list[Path]:
    """Distinct JPEGs of random pixels: they compress badly, so their thumbnails take real room
    (about 2.5 MB per 1600x1200 photo)."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(count):
        img = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
        path = folder / f"{prefix}_{i:04d}.jpg"
        img.save(path, "JPEG", quality=85)
        made.append(path)
    return made


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def marked_processes(marker: str) -> list[tuple[int, str]]:
    """(pid, name) of every live (non-zombie) process whose environment holds `marker`."""
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if needle not in Path(f"/proc/{entry}/environ").read_bytes():
                continue
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        state = stat.rsplit(")", 1)[1].split()[0]
        if state != "Z":
            found.append((int(entry), name))
    return found

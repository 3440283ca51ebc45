"""Shoebox under systemd, without systemd: the notify protocol against a socket the test owns
(READY only once the app answers, STATUS, the watchdog's cadence and a blocked event loop that
misses it, STOPPING, more time asked for migrations), and the shipped unit checked by
`systemd-analyze verify` and `security` (the exposure score the issue asks for)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from daemon.system.notify import Notifier, status_line
from tests.integration.api_support import Daemon, http_json
from tests.integration.support import SHOEBOX
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "shoebox.service"
SYSUSERS = REPO / "systemd" / "shoebox.sysusers"
EXPOSURE_TARGET = 2.0


class Ear:
    """The service manager's side: a datagram socket, read by a thread of its own so every message
    is stamped with the time it arrived (the watchdog's cadence is what is measured)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.heard: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._open = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self._open:
            try:
                data = self.sock.recv(4096)
            except (socket.timeout, BlockingIOError):
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._lock:
                self.heard.append((time.monotonic(), fields))

    def listen(self) -> list[tuple[float, dict[str, str]]]:
        """Everything heard so far, with when."""
        with self._lock:
            return list(self.heard)

    def first(self, key: str) -> dict[str, str] | None:
        return next((f for _, f in self.listen() if key in f), None)

    def times(self, key: str) -> list[float]:
        return [t for t, f in self.listen() if key in f]

    def close(self) -> None:
        self._open = False
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def ear(tmp_path: Path):
    e = Ear(tmp_path / "notify.sock")
    yield e
    e.close()


def test_messages_are_the_protocol_and_need_no_systemd(ear: Ear) -> None:
    n = Notifier(str(ear.path))
    n.ready("idle; 3 photos")
    n.status("indexing: 12 files queued; 3 photos")
    n.extend_timeout(90, "updating the database: 0012_x")
    n.stopping()
    wait_until(lambda: len(ear.listen()) == 4, 5, what="the four messages")
    messages = [f for _, f in ear.listen()]
    assert messages == [{"READY": "1", "STATUS": "idle; 3 photos"},
                        {"STATUS": "indexing: 12 files queued; 3 photos"},
                        {"EXTEND_TIMEOUT_USEC": "90000000", "STATUS": "updating the database: 0012_x"},
                        {"STOPPING": "1", "STATUS": "stopping"}]
    quiet = Notifier.from_environ({})  # outside systemd: nothing to tell, nothing fails
    assert not quiet.enabled and quiet.watchdog_interval is None
    quiet.ready()
    # a watchdog meant for another process (WATCHDOG_PID) is not ours to feed
    other = Notifier.from_environ({"NOTIFY_SOCKET": str(ear.path), "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval is None
    ours = Notifier.from_environ({"NOTIFY_SOCKET": str(ear.path), "WATCHDOG_USEC": "4000000",
                                  "WATCHDOG_PID": str(os.getpid())})
    assert ours.watchdog_interval == 2.0


def test_an_abstract_socket_name_is_understood() -> None:
    name = f"shoebox-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        Notifier("@" + name).ready()
        assert sock.recv(100) == b"READY=1"


def test_the_watchdog_is_fed_by_the_event_loop_and_a_blocked_loop_misses_it(ear: Ear) -> None:
    notifier = Notifier(str(ear.path), watchdog_usec=200_000)  # WatchdogSec=0.2: fed every 0.1 s

    async def run() -> None:
        feeding = asyncio.create_task(notifier.feed_watchdog())
        await asyncio.sleep(1.0)  # the cadence under test: a second of a healthy loop
        time.sleep(1.0)  # the fault under test: a bug that blocks the event loop for a second
        await asyncio.sleep(0.3)
        feeding.cancel()

    asyncio.run(run())
    wait_until(lambda: ear.times("WATCHDOG") and time.monotonic() - ear.times("WATCHDOG")[-1] > 0.05, 5,
               what="the last beat to be read")
    beats = ear.times("WATCHDOG")
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    assert len(beats) >= 10, beats
    healthy, blocked = gaps[:8], max(gaps)
    assert max(healthy) < 0.2, f"a healthy loop fed late: {healthy}"
    assert blocked >= 0.9, f"the blocked loop still fed the watchdog (longest gap {blocked:.2f} s)"


def test_status_line_says_what_the_daemon_does() -> None:
    assert status_line({"photos": {"total": 12345}, "queue": {"index": 1204, "tag": 0}, "paused": False}) \
        == "indexing: 1,204 files queued; 12,345 photos"
    assert status_line({"photos": {"total": 3}, "queue": {}, "paused": False}) == "idle; 3 photos"
    assert status_line({"photos": {"total": 3}, "queue": {"index": 5, "tag": 2}, "paused": True}) \
        == "indexing paused; tagging: 2 photos queued; 3 photos"


@pytest.mark.slow
def test_shoebox_serve_tells_systemd_ready_status_watchdog_and_stopping(ear: Ear, tmp_path: Path) -> None:
    library, data = tmp_path / "library", tmp_path / "data"
    library.mkdir()
    env = {"NOTIFY_SOCKET": str(ear.path), "WATCHDOG_USEC": "1000000"}  # WatchdogSec=1
    with Daemon(library, data, env=env) as daemon:
        ready = wait_until(lambda: ear.first("READY"), 60, what="READY=1")
        # READY came after the app answered: health answers at once, and the status says what it does
        assert http_json("GET", f"{daemon.base}/api/v1/health")[0] == 200
        assert re.fullmatch(r"(idle|indexing.*); \d+ photos", ready["STATUS"]), ready
        # a new data folder: the migrations asked for more time before READY
        extends = [f for _, f in ear.listen() if "EXTEND_TIMEOUT_USEC" in f]
        assert any("updating the database" in f.get("STATUS", "") for f in extends), extends
        ready_at = ear.times("READY")[0]
        assert all(t < ready_at for t in ear.times("EXTEND_TIMEOUT_USEC"))
        # fed twice a second from then on
        wait_until(lambda: len([t for t in ear.times("WATCHDOG") if t > ready_at]) >= 4, 30,
                   what="the watchdog to be fed")
        beats = [t for t in ear.times("WATCHDOG") if t > ready_at]
        assert max(b - a for a, b in zip(beats, beats[1:])) < 1.0, (beats, daemon.stderr()[-2000:])
        # the status line follows what the daemon does: paused from the command line, it says so
        paused = subprocess.run([*SHOEBOX, "index", "--pause", "--library", str(library), "--data", str(data)],
                                cwd=REPO, capture_output=True, text=True, timeout=60)
        assert paused.returncode == 0, paused.stderr
        wait_until(lambda: any(f.get("STATUS", "").startswith("indexing paused") for _, f in ear.listen()), 30,
                   what="a STATUS line saying indexing is paused")
    assert ear.first("STOPPING") is not None


# -- the unit file --------------------------------------------------------------------------------


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package systemd; CI installs it)")
    return path


def test_the_unit_verifies(tmp_path: Path) -> None:
    analyze = _tool("systemd-analyze")
    # verify wants the ExecStart binary to exist: check the unit as installed, with a stand-in
    # for /opt/shoebox/.venv/bin/shoebox under a root of our own
    root = tmp_path / "root"
    exe = root / "opt" / "shoebox" / ".venv" / "bin" / "shoebox"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc" / "systemd" / "system" / "shoebox.service")
    # and the system's own units it is ordered against (network-online.target, ...)
    shutil.copytree("/usr/lib/systemd/system", root / "usr" / "lib" / "systemd" / "system", symlinks=True)
    result = subprocess.run([analyze, "verify", f"--root={root}", "--man=no", "shoebox.service"],
                            capture_output=True, text=True, timeout=60)
    said = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not said, said
    # and it would say so: a misspelt setting is found
    broken = (root / "etc" / "systemd" / "system" / "shoebox.service")
    broken.write_text(UNIT.read_text().replace("NoNewPrivileges=true", "NoNewPrivilege=true"))
    result = subprocess.run([analyze, "verify", f"--root={root}", "--man=no", "shoebox.service"],
                            capture_output=True, text=True, timeout=60)
    assert "NoNewPrivilege" in result.stdout + result.stderr


def test_the_unit_is_hardened_to_an_exposure_of_at_most_2() -> None:
    analyze = _tool("systemd-analyze")
    result = subprocess.run([analyze, "security", "--offline=true", "--no-pager", str(UNIT)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for shoebox\.service: ([0-9.]+)", result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= EXPOSURE_TARGET, result.stdout[-3000:]


def test_the_unit_runs_the_service_as_its_own_system_user_with_its_own_directories() -> None:
    unit = UNIT.read_text()
    # (no LogsDirectory: the log goes to the journal, and nothing of Shoebox writes log files)
    for line in ("Type=notify", "WatchdogSec=", "User=shoebox", "StateDirectory=shoebox",
                 "CacheDirectory=shoebox", "UMask=0077"):
        assert line in unit, line
    sysusers = SYSUSERS.read_text()
    assert re.search(r"^u\s+shoebox\s", sysusers, re.M), sysusers

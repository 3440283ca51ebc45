"""Shared parts of the events tests and benchmark (no tests in here): a real mosquitto broker on
a free loopback port, an MQTT listener that records everything, and `shoebox serve` as a real
process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import paho.mqtt.client as mqtt

from tests.integration.support import REPO, SHOEBOX, free_port, seed_places
from tests.waiting import wait_until

MOSQUITTO = "/usr/sbin/mosquitto"


class Broker:
    """mosquitto with its own config file. `persistence` keeps sessions and retained messages
    across a stop/start (what a real home broker does), so a subscriber misses nothing."""

    def __init__(self, tmp: Path, *, port: int | None = None, persistence: bool = False) -> None:
        self.dir = tmp / f"mosquitto-{id(self)}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.persistence = persistence
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = self.dir / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true",
                 f"persistence {'true' if self.persistence else 'false'}",
                 f"log_dest file {self.dir / 'mosquitto.log'}", "log_type all"]
        if persistence:
            lines += [f"persistence_location {self.dir}/", "autosave_interval 1"]
        if os.geteuid() == 0:
            # started as root, mosquitto drops to the `mosquitto` user, which cannot write into the
            # test's private temporary folder: no log and, worse, no persistence file, so a
            # "persistent" subscriber silently lost what was published while it reconnected
            lines.append("user root")
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> "Broker":
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)

        def listening() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        wait_until(listening, timeout, what="mosquitto to listen")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # a clean stop saves the persistence file
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        path = self.dir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    at: float

    def json(self) -> Any:
        return json.loads(self.payload)


class Listener:
    """An MQTT client that records every message it gets, like Home Assistant would see them.
    `persistent` uses a fixed client id and a kept session (QoS 1), so messages published while
    it reconnects after a broker restart are queued for it by the broker."""

    def __init__(self, port: int, topics: list[str], *, client_id: str = "", persistent: bool = False) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()
        self.topics = topics
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"test-{id(self)}",
                                  clean_session=not persistent)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise AssertionError("the test listener could not connect to mosquitto")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            client.subscribe([(t, 1) for t in self.topics])
            self.connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(Message(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos, time.monotonic()))

    def snapshot(self, predicate: Callable[[Message], bool] = lambda m: True) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if predicate(m)]

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float, what: str, count: int = 1) -> list[Message]:
        def enough() -> list[Message] | None:
            found = self.snapshot(predicate)
            return found if len(found) >= count else None

        try:
            return wait_until(enough, timeout, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; got {len(self.snapshot(predicate))}") from None

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def events_of(listener: Listener, event_type: str | None = None) -> list[dict[str, Any]]:
    """Event payloads received on <base>/<id>/events/<type>, in arrival order."""
    return [m.json() for m in listener.snapshot(
        lambda m: "/events/" in m.topic and (event_type is None or m.topic.endswith("/events/" + event_type)))]


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SHOEBOX_")}


def serve(library: Path, data: Path, broker_port: int | None, *extra: str, http_port: int | None = None,
          thumbs_port: int | None = None, log: Path | None = None) -> subprocess.Popen[bytes]:
    """`shoebox serve` as a user runs it, MQTT on when a broker port is given, zeroconf off
    unless asked for, tagging off unless asked for (faster, and not what these tests are about)."""
    seed_places(data)
    args = [*SHOEBOX, "serve", "--library", str(library), "--data", str(data), "--server-host", "127.0.0.1",
            "--server-port", str(http_port or free_port()), "--server-thumbnail-port", str(thumbs_port or free_port()),
            "--workers", "1", "--zeroconf-enabled", "false",
            "--tagging-enabled", "false", "--index-rescan-interval", "0", "--server-https", "false"]
    if broker_port is not None:
        args += ["--mqtt-enabled", "true", "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker_port),
                 "--mqtt-state-interval", "1"]
    args += list(extra)
    stderr = open(log, "ab") if log is not None else subprocess.DEVNULL
    return subprocess.Popen(args, cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=stderr)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 60) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def distinct_copies(src: Path, dest_dir: Path, count: int, prefix: str = "IMG") -> list[Path]:
    """`count` copies of a JPEG that differ in content (a unique trailer after the image data)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    data = src.read_bytes()
    out = []
    for i in range(count):
        path = dest_dir / f"{prefix}_{i:04d}.jpg"
        path.write_bytes(data + f"shoebox-events-{prefix}-{i}".encode())
        out.append(path)
    return out

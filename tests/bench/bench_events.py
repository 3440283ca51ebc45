"""Events benchmark: `python -m tests.bench.bench_events [--json FILE]`.

1. bus → MQTT: events/s from `publish()` until the broker acknowledged every one (QoS 1, the real
   MqttTransport, a real mosquitto on loopback) and a subscriber received them all;
2. bus → webhooks: events/s to one subscription on a local aiohttp receiver (its own thread and
   loop), each POST signed and answered 204;
3. latency from a photo landing in the library (an atomic rename, as cameras and sync tools do)
   to its `photo.indexed` MQTT message, with the real `shoebox serve` (watcher on), tagging off
   and on: median and p95.
Figures from a shared machine are printed, not judged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from daemon.events.bus import EventBus
from daemon.events.mqtt import MqttSettings, MqttTransport
from daemon.events.webhooks import WebhookManager, WebhookSettings, create_webhook
from daemon.store.db import Database
from tests.integration.support import free_port
from tests.integration.test_events_helpers import Broker, Listener, serve, stop

SAMPLES = Path(os.environ.get("SHOEBOX_SAMPLES", Path(__file__).resolve().parents[3] / "shared" / "samples"))
PHOTO = SAMPLES / "exif-samples" / "jpg" / "mobile" / "jolla.jpg"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def _nothing() -> dict[str, Any]:
    return {}


async def _no_image(_: str) -> bytes | None:
    return None


async def _no_command(name: str, payload: bytes) -> None:
    return None


async def bus_to_mqtt(tmp: Path, count: int) -> dict[str, float]:
    broker = Broker(tmp).start()
    listener = Listener(broker.port, ["bench/+/events/#"])
    db = await Database.open(tmp / "mqtt.db")
    bus = EventBus(db, outbox_max=count * 2, durable=["mqtt"])
    await bus.start()
    mqtt = MqttTransport(MqttSettings(host="127.0.0.1", port=broker.port, base_topic="bench", discovery=False),
                         instance_id=bus.instance_id, version="bench", state=_nothing, image=_no_image,
                         command=_no_command)
    await bus.add_transport(mqtt, window=64)
    while not mqtt.connected:
        await asyncio.sleep(0.05)
    try:
        started = time.perf_counter()
        for i in range(count):
            bus.publish("photo.indexed", {"photo": f"p{i}", "path": f"2024/IMG_{i:05d}.jpg", "new": True})
        pump = bus._pumps["mqtt"]
        while pump.delivered < count:
            await asyncio.sleep(0.005)
        acked = time.perf_counter() - started
        while len(listener.snapshot()) < count:
            await asyncio.sleep(0.005)
        received = time.perf_counter() - started
    finally:
        await bus.stop()
        await db.close()
        listener.close()
        broker.stop()
    return {"events": count, "acked_s": acked, "received_s": received, "events_per_s": count / received}


class ThreadedReceiver:
    """An aiohttp receiver on its own thread and loop (so it does not share the bus's loop)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.count = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def hook(request: web.Request) -> web.Response:
            await request.read()
            self.count += 1
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self.runner = runner
        self.ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def bus_to_webhooks(tmp: Path, count: int) -> dict[str, float]:
    receiver = ThreadedReceiver()
    db = await Database.open(tmp / "hooks.db")
    await db.write(lambda c: create_webhook(c, f"http://127.0.0.1:{receiver.port}/hook", [], "bench-secret-0123456789"))
    bus = EventBus(db, outbox_max=count * 2, durable=["webhook:1"])
    await bus.start()
    manager = WebhookManager(db, bus, WebhookSettings(allow_private_targets="127.0.0.1"), user_agent="bench")
    await manager.start()
    try:
        started = time.perf_counter()
        for i in range(count):
            bus.publish("photo.added", {"photo": f"p{i}", "path": f"2024/IMG_{i:05d}.jpg"})
        while receiver.count < count:
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
    finally:
        await manager.stop()
        await bus.stop()
        await db.close()
        receiver.close()
    return {"events": count, "seconds": elapsed, "events_per_s": count / elapsed}


def landing_latency(tmp: Path, photos: int, tagging: bool) -> dict[str, Any]:
    broker = Broker(tmp).start()
    listener = Listener(broker.port, ["shoebox/+/events/photo.indexed"])
    library = tmp / f"library-{tagging}"
    library.mkdir()
    staging = tmp / f"staging-{tagging}"
    staging.mkdir()
    proc = serve(library, tmp / f"data-{tagging}", broker.port, "--tagging-enabled", str(tagging).lower(),
                 "--workers", "2", log=tmp / f"serve-{tagging}.log")
    source = PHOTO.read_bytes()
    latencies = []
    try:
        time.sleep(3.0)  # the watcher is up once the first scan of the empty library ran
        for i in range(photos):
            name = f"IMG_{i:04d}.jpg"
            tmp_file = staging / name
            tmp_file.write_bytes(source + f"bench-{tagging}-{i}".encode())
            landed = time.monotonic()
            os.rename(tmp_file, library / name)
            msg = listener.wait_for(lambda m: name.encode() in m.payload, 60, f"photo.indexed of {name}")[0]
            latencies.append(msg.at - landed)
            time.sleep(0.5)  # one photo at a time, as a camera drops them
    finally:
        stop(proc)
        listener.close()
        broker.stop()
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
    return {"tagging": tagging, "photos": photos, "median_s": statistics.median(latencies), "p95_s": p95,
            "max_s": latencies[-1]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mqtt-events", type=int, default=5000)
    parser.add_argument("--webhook-events", type=int, default=2000)
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="shoebox-bench-events-") as d:
        tmp = Path(d)
        log("bus -> MQTT ...")
        results["mqtt"] = asyncio.run(bus_to_mqtt(tmp, args.mqtt_events))
        log("bus -> webhooks ...")
        results["webhooks"] = asyncio.run(bus_to_webhooks(tmp, args.webhook_events))
        for tagging in (False, True):
            log(f"file landing -> photo.indexed, tagging {'on' if tagging else 'off'} ...")
            results[f"latency_tagging_{'on' if tagging else 'off'}"] = landing_latency(tmp, args.photos, tagging)
        shutil.rmtree(tmp, ignore_errors=True)
    m, w = results["mqtt"], results["webhooks"]
    print(f"bus -> MQTT (QoS 1, window 64):   {m['events_per_s']:8.0f} events/s  ({m['events']} events, "
          f"acked in {m['acked_s']:.2f} s, received in {m['received_s']:.2f} s)")
    print(f"bus -> webhook (1 subscription): {w['events_per_s']:8.0f} events/s  ({w['events']} events in {w['seconds']:.2f} s)")
    for key in ("latency_tagging_off", "latency_tagging_on"):
        r = results[key]
        print(f"file -> photo.indexed, tagging {'on ' if r['tagging'] else 'off'}: median {r['median_s'] * 1000:6.0f} ms, "
              f"p95 {r['p95_s'] * 1000:6.0f} ms, max {r['max_s'] * 1000:6.0f} ms ({r['photos']} photos)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

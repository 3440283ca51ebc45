"""MQTT: every event on `<base>/<id>/events/<type>` (QoS 1), a retained state document, an
availability topic with a last will, commands from home automation, and Home Assistant discovery.

Why paho-mqtt's own network thread (`loop_start`): it reconnects by itself and keeps QoS 1
messages queued while the broker is away, resending them on reconnect. Its callbacks run in
that thread; each one only hands its arguments to the event loop with `call_soon_threadsafe`, and
the loop never calls anything of paho's that waits on the network (`publish` only queues;
`loop_stop`, which joins the thread, runs in a helper thread). A delivery is done when the
broker's PUBACK arrives, which is what moves the outbox cursor: an event the broker never
acknowledged is sent again after a restart, with the same id, for receivers to de-duplicate.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import ssl
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import paho.mqtt.client as mqtt

from daemon.events.bus import PERSON_RECOGNIZED, PHOTO_ADDED, Event

log = logging.getLogger(__name__)

COMMANDS = ("index", "import", "rescan")


class MqttError(Exception):
    """The MQTT settings cannot work (a TLS file missing, a bad topic); the message says which."""


@dataclass(frozen=True)
class MqttSettings:
    host: str = "localhost"
    port: int = 1883
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    username: str = ""
    password: str = ""
    client_id: str = ""
    base_topic: str = "shoebox"
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    birth_topic: str = "homeassistant/status"
    state_interval: float = 5.0
    keepalive: int = 30

    @classmethod
    def from_section(cls, section: dict[str, Any]) -> "MqttSettings":
        known = {k: v for k, v in section.items() if k in cls.__dataclass_fields__}
        settings = cls(**known)
        for name in ("base_topic", "discovery_prefix"):
            value = getattr(settings, name)
            if not value or any(c in value for c in "+#") or value.startswith("/") or value.endswith("/"):
                raise MqttError(f"mqtt.{name} {value!r} is not a usable topic prefix (no + or #, no leading or trailing /)")
        if not settings.birth_topic or any(c in settings.birth_topic for c in "+#"):
            raise MqttError(f"mqtt.birth_topic {settings.birth_topic!r} is not a usable topic (not empty, no + or #)")
        return settings


class Topics:
    """Every topic Shoebox uses, in one place (the README documents the same list)."""

    def __init__(self, base: str, instance: str, discovery_prefix: str,
                 birth_topic: str = "homeassistant/status") -> None:
        self.root = f"{base}/{instance}"
        self.availability = f"{self.root}/availability"
        self.state = f"{self.root}/state"
        self.latest_image = f"{self.root}/latest/image"
        self.cmd_prefix = f"{self.root}/cmd/"
        # Home Assistant's birth topic is its own setting (MQTT integration → birth message), not
        # derived from the discovery prefix: the two are changed independently in Home Assistant.
        self.ha_status = birth_topic
        self.discovery_prefix = discovery_prefix

    def event(self, event_type: str) -> str:
        return f"{self.root}/events/{event_type}"

    def command(self, name: str) -> str:
        return self.cmd_prefix + name


def discovery_messages(topics: Topics, instance: str, version: str, *, device_name: str = "Shoebox",
                       image_content_type: str = "image/jpeg") -> list[tuple[str, dict[str, Any]]]:
    """Home Assistant MQTT discovery: (topic, config) for every entity of the Shoebox device.

    Format per https://www.home-assistant.io/integrations/mqtt/ (discovery topic
    `<prefix>/<component>/<node_id>/<object_id>/config`). The entity id is asked for with
    `default_entity_id` ("<domain>.shoebox_<object>"): Home Assistant 2025.10 deprecated the older
    `object_id` key and 2026.4 ignores it (entity ids would then come from the names). The event
    entities subscribe at QoS 1 (`qos`), so an event is not lost between broker and Home Assistant.
    Components: event.mqtt (a JSON payload with
    `event_type`, one of `event_types`; other keys become attributes), image.mqtt (`image_topic`
    carrying the raw JPEG, `content_type`), button.mqtt (`command_topic`, `payload_press`)."""
    node = f"shoebox_{instance}"
    device = {"identifiers": [node], "name": device_name, "manufacturer": "Shoebox",
              "model": "Shoebox photo library", "sw_version": version}
    origin = {"name": "Shoebox", "sw_version": version}
    common = {"availability_topic": topics.availability, "payload_available": "online",
              "payload_not_available": "offline", "device": device, "origin": origin}

    def entity(component: str, object_id: str, name: str, **config: Any) -> tuple[str, dict[str, Any]]:
        payload = {"name": name, "unique_id": f"{node}_{object_id}",
                   "default_entity_id": f"{component}.shoebox_{object_id}", **common, **config}
        return f"{topics.discovery_prefix}/{component}/{node}/{object_id}/config", payload

    count = {"state_topic": topics.state, "state_class": "measurement"}
    return [
        entity("sensor", "photos", "Photos", value_template="{{ value_json.photos }}", icon="mdi:image-multiple", **count),
        entity("sensor", "videos", "Videos", value_template="{{ value_json.videos }}", icon="mdi:filmstrip-box-multiple", **count),
        entity("sensor", "people", "People", value_template="{{ value_json.people }}", icon="mdi:account-group", **count),
        entity("sensor", "queue", "Queue", value_template="{{ value_json.queue }}", icon="mdi:tray-full", **count),
        entity("sensor", "last_indexed", "Last indexed", state_topic=topics.state, device_class="timestamp",
               value_template="{{ value_json.last_indexed or None }}"),
        entity("binary_sensor", "indexing", "Indexing", state_topic=topics.state, device_class="running",
               value_template="{{ 'ON' if value_json.indexing else 'OFF' }}", payload_on="ON", payload_off="OFF"),
        entity("binary_sensor", "disk_full", "Disk full", state_topic=topics.state, device_class="problem",
               value_template="{{ 'ON' if value_json.storage == 'full' else 'OFF' }}", payload_on="ON",
               payload_off="OFF"),
        entity("event", "new_photo", "New photo", state_topic=topics.event(PHOTO_ADDED), event_types=["added"],
               qos=1, icon="mdi:image-plus",
               value_template=('{"event_type": "added", "event_id": {{ value_json.id | to_json }},'
                               ' "photo": {{ value_json.data.photo | to_json }},'
                               ' "path": {{ value_json.data.path | to_json }},'
                               ' "taken_at": {{ value_json.data.taken_at | to_json }}}')),
        entity("event", "person_recognized", "Person recognised", state_topic=topics.event(PERSON_RECOGNIZED),
               event_types=["recognized"], qos=1, icon="mdi:face-recognition",
               value_template=('{"event_type": "recognized", "event_id": {{ value_json.id | to_json }},'
                               ' "person": {{ value_json.data.person | to_json }},'
                               ' "person_id": {{ value_json.data.person_id | to_json }},'
                               ' "photo": {{ value_json.data.photo | to_json }},'
                               ' "confidence": {{ value_json.data.confidence | to_json }}}')),
        entity("image", "latest_photo", "Latest photo", image_topic=topics.latest_image,
               content_type=image_content_type),
        entity("button", "index", "Index now", command_topic=topics.command("index"), payload_press="PRESS",
               icon="mdi:image-refresh"),
    ]


ANNOUNCED_KEY = "mqtt.discovery_topics"


def load_announced(conn: sqlite3.Connection) -> list[str]:
    """The discovery config topics the last run announced (kept in meta), so a run with discovery
    off or another instance id can clear them: retained configs outlive the daemon on the broker,
    and Home Assistant keeps an entity (and the device) for every one it still receives."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (ANNOUNCED_KEY,)).fetchone()
    if row is None:
        return []
    try:
        topics = json.loads(row[0])
    except ValueError:
        return []
    return [str(t) for t in topics] if isinstance(topics, list) else []


def record_announced(conn: sqlite3.Connection, topics: list[str]) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (ANNOUNCED_KEY, json.dumps(topics)))


StateProvider = Callable[[], Awaitable[dict[str, Any]]]
ImageProvider = Callable[[str], Awaitable[bytes | None]]
CommandHandler = Callable[[str, bytes], Awaitable[Any]]
LoadAnnounced = Callable[[], Awaitable[list[str]]]
SaveAnnounced = Callable[[list[str]], Awaitable[None]]


class MqttTransport:
    """The durable MQTT transport (name "mqtt"). Wired by the App with three callables: the
    state document, the latest photo's JPEG, and what to do with a command."""

    name = "mqtt"

    def __init__(self, settings: MqttSettings, *, instance_id: str, version: str, state: StateProvider,
                 image: ImageProvider, command: CommandHandler, image_content_type: str = "image/jpeg",
                 load_announced: LoadAnnounced | None = None, save_announced: SaveAnnounced | None = None) -> None:
        self.settings = settings
        self.instance_id = instance_id
        self.version = version
        self.topics = Topics(settings.base_topic, instance_id, settings.discovery_prefix, settings.birth_topic)
        self._load_announced = load_announced
        self._save_announced = save_announced
        self._stale_configs: list[str] = []  # announced by an earlier run, not by this one: to clear
        self._cleanup_started = False
        self._state_provider = state
        self._image_provider = image
        self._command = command
        self._image_content_type = image_content_type
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._connected = asyncio.Event()
        self._state_dirty = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_state: dict[str, Any] | None = None
        self._latest_photo: str | None = None
        self._latest_sent: str | None = None
        self.connects = 0
        self.last_error: str | None = None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def status(self) -> dict[str, Any]:
        return {"connected": self.connected, "broker": f"{self.settings.host}:{self.settings.port}",
                "connects": self.connects, "broker_error": self.last_error}

    # -- lifecycle --------------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=s.client_id or f"shoebox-{self.instance_id}",
                             protocol=mqtt.MQTTv311, clean_session=True)
        client.enable_logger(logging.getLogger("daemon.events.paho"))
        client.will_set(self.topics.availability, "offline", qos=1, retain=True)
        if s.username:
            client.username_pw_set(s.username, s.password or None)
        if s.tls:
            try:
                client.tls_set(ca_certs=s.ca_file or None, certfile=s.cert_file or None, keyfile=s.key_file or None,
                               cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise MqttError(f"mqtt TLS settings do not work (ca_file {s.ca_file!r}, cert_file {s.cert_file!r}, "
                                f"key_file {s.key_file!r}): {exc}") from None
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(100)
        client.on_connect = self._cb_connect
        client.on_disconnect = self._cb_disconnect
        client.on_publish = self._cb_publish
        client.on_message = self._cb_message
        return client

    def _discovery(self) -> list[tuple[str, dict[str, Any]]]:
        if not self.settings.discovery:
            return []
        return discovery_messages(self.topics, self.instance_id, self.version,
                                  image_content_type=self._image_content_type)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._load_announced is not None:
            current = [topic for topic, _ in self._discovery()]
            previous = await self._load_announced()
            self._stale_configs = [t for t in previous if t not in set(current)]
            if self._save_announced is not None and self._stale_configs + current != previous:
                # both, until the clears are acknowledged: a run stopped before that still knows
                # what this one announced
                await self._save_announced(self._stale_configs + current)
        self._client = self._make_client()
        # connect_async only records where to connect; the network thread does the connecting
        # (and the DNS lookup), so a dead broker never holds up start-up.
        self._client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive)
        self._client.loop_start()
        self._spawn(self._state_forever(), "mqtt-state")

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        client = self._client
        if client is None:
            return
        if self.connected:
            try:
                await asyncio.wait_for(self._publish_acked(self.topics.availability, b"offline", retain=True), 2.0)
            except (asyncio.TimeoutError, MqttError):
                pass
        self._connected.clear()  # a disconnect we asked for is not worth a warning
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        self._client = None
        for fut in self._acks.values():
            if not fut.done():
                fut.cancel()
        self._acks.clear()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("mqtt task %s failed", task.get_name(), exc_info=task.exception())

    # -- delivering events ----------------------------------------------------------------------------

    async def deliver(self, event: Event) -> None:
        """Publish the event (QoS 1) and return when the broker acknowledged it."""
        await self._publish_acked(self.topics.event(event.type), event.body())
        if event.type == PHOTO_ADDED and event.data.get("photo"):
            self._latest_photo = str(event.data["photo"])
        self._state_dirty.set()

    def _publish_acked(self, topic: str, payload: bytes, *, retain: bool = False) -> asyncio.Future[None]:
        """Queue a QoS 1 message (paho only queues: no network wait here); the future completes on
        PUBACK. Called on the event loop only."""
        assert self._loop is not None and self._client is not None
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):  # NO_CONN: queued for reconnect
            raise MqttError(f"cannot publish to {topic}: {mqtt.error_string(info.rc)}")
        fut: asyncio.Future[None] = self._loop.create_future()
        self._acks[info.mid] = fut
        return fut

    def _publish_nowait(self, topic: str, payload: bytes | str, *, retain: bool = True, qos: int = 1) -> None:
        if self._client is not None:
            self._client.publish(topic, payload, qos=qos, retain=retain)

    # -- paho callbacks (network thread): hand everything to the loop ---------------------------------

    def _to_loop(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closing: nothing left to tell
            pass

    def _cb_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._to_loop(self._connected_on_loop, not reason.is_failure, str(reason))

    def _cb_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._to_loop(self._disconnected_on_loop, str(reason))

    def _cb_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        self._to_loop(self._acked_on_loop, mid)

    def _cb_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._to_loop(self._message_on_loop, message.topic, bytes(message.payload), bool(message.retain))

    # -- the same, on the loop ----------------------------------------------------------------------------

    def _connected_on_loop(self, ok: bool, reason: str) -> None:
        if not ok:
            self.last_error = f"broker refused the connection: {reason}"
            log.warning("mqtt: %s", self.last_error)
            return
        self.connects += 1
        self.last_error = None
        self._connected.set()
        log.info("mqtt: connected to %s:%d", self.settings.host, self.settings.port)
        assert self._client is not None
        self._publish_nowait(self.topics.availability, "online")
        self._client.subscribe([(self.topics.cmd_prefix + "+", 1), (self.topics.ha_status, 1)])
        self._announce()
        if not self._cleanup_started:  # once per run; paho resends unacknowledged clears on reconnect
            self._cleanup_started = True
            self._spawn(self._clear_stale_configs(), "mqtt-discovery-cleanup")

    async def _clear_stale_configs(self) -> None:
        """Empty retained payloads on the config topics an earlier run announced and this one does
        not (discovery turned off, another instance id or prefix): the broker drops them and Home
        Assistant removes those entities, and the device once it has none. The new list is recorded
        only after the broker acknowledged every clear, so a crash in between clears them next time."""
        if self._stale_configs:
            log.info("mqtt: clearing %d discovery configs of an earlier run", len(self._stale_configs))
            await asyncio.gather(*(self._publish_acked(t, b"", retain=True) for t in self._stale_configs))
        if self._save_announced is not None:
            await self._save_announced([topic for topic, _ in self._discovery()])
        self._stale_configs = []

    def _announce(self) -> None:
        """Discovery, state and the latest photo: (re)sent on every connect (a restarted broker
        without persistence forgot its retained messages) and when Home Assistant comes online."""
        for topic, config in self._discovery():
            self._publish_nowait(topic, json.dumps(config))
        self._last_state = None
        self._latest_sent = None
        self._state_dirty.set()

    def _disconnected_on_loop(self, reason: str) -> None:
        if self._connected.is_set():
            log.warning("mqtt: disconnected from %s:%d (%s); reconnecting, events wait in the outbox",
                        self.settings.host, self.settings.port, reason)
        self._connected.clear()
        self.last_error = reason

    def _acked_on_loop(self, mid: int) -> None:
        fut = self._acks.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _message_on_loop(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic == self.topics.ha_status:
            if payload.strip().lower() == b"online":
                log.info("mqtt: Home Assistant came online; sending discovery again")
                self._announce()
            return
        if topic.startswith(self.topics.cmd_prefix):
            if retained:  # a stale retained command must not re-run on every connect
                log.warning("mqtt: ignoring retained command on %s", topic)
                return
            name = topic[len(self.topics.cmd_prefix):]
            self._spawn(self._command(name, payload), f"mqtt-cmd-{name}")

    # -- state and latest photo ---------------------------------------------------------------------------

    def request_state(self) -> None:
        """Something changed (an index run started or ended): publish state at the next tick."""
        self._state_dirty.set()

    async def _state_forever(self) -> None:
        interval = max(1.0, float(self.settings.state_interval))
        last_publish = 0.0
        while True:
            try:
                await asyncio.wait_for(self._state_dirty.wait(), timeout=60.0)
            except asyncio.TimeoutError:
                pass
            wait = interval - (time.monotonic() - last_publish)
            if wait > 0:
                await asyncio.sleep(wait)
            self._state_dirty.clear()
            if not self.connected:
                continue
            try:
                state = await self._state_provider()
                if state != self._last_state:
                    self._publish_nowait(self.topics.state, json.dumps(state))
                    self._last_state = state
                latest = self._latest_photo or state.get("latest_photo")
                if latest and latest != self._latest_sent:
                    image = await self._image_provider(latest)
                    if image:
                        self._publish_nowait(self.topics.latest_image, image)
                        self._latest_sent = latest
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("mqtt: could not publish the state")
            last_publish = time.monotonic()

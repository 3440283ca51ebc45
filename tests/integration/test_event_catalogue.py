"""Every event type in the catalogue (daemon.events.bus.EVENT_TYPES) is raised by a real action and
received over MQTT (a real mosquitto) and by a webhook (a real HTTP receiver).

The test walks the catalogue: a type added without a producer (or whose producer stops raising it)
fails it, naming the type. The actions are what a user or a home does: indexing sample photos with
the real models, API calls as the web app makes them, an upload, an import, a share opened by a
guest, the library drive going away and coming back, the thumbnail disk filling up and being freed,
an MQTT command, and a webhook receiver that keeps failing.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import aiohttp

from daemon.auth.roles import Role
from daemon.events.bus import EVENT_TYPES
from daemon.events.webhooks import create_webhook
from tests.conftest import copy_sample
from tests.faults.fs import fill, tmpfs
from tests.integration.api_support import add_user, api, auth, login, photo_ids
from tests.integration.support import make_config, shoebox
from tests.integration.test_events_helpers import Broker, Listener, events_of as mqtt_events
from tests.integration.test_events_webhooks import Receiver
from tests.waiting import wait_until_async

NATURE = "immich-test-assets/albums/nature"
SECRET = "a-long-enough-shared-secret-for-tests"


def form(name: str, content: bytes) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("file", content, filename=name, content_type="application/octet-stream")
    return data


async def test_every_event_type_is_raised_by_a_real_action_and_reaches_mqtt_and_a_webhook(
        library: Path, tmp_path: Path, samples: Path) -> None:
    copy_sample(samples, f"{NATURE}/prairie_falcon.jpg", library / "nature")
    copy_sample(samples, "faces/obama.jpg", library / "people")
    copy_sample(samples, "faces/biden.jpg", library / "people")
    data = tmp_path / "data"
    thumbs = data / "thumbs"
    broker = Broker(tmp_path).start()
    home = Listener(broker.port, ["shoebox/+/events/#"])
    receiver = await Receiver().start()
    config = make_config(library, data, mqtt__enabled="true", mqtt__host="127.0.0.1", mqtt__port=str(broker.port),
                         zeroconf__enabled="false", index__min_free_mib="1", webhooks__max_failures="1",
                         webhooks__retry_base="0.1", webhooks__allow_private_targets="127.0.0.1")

    def hooked(event_type: str) -> list[dict[str, Any]]:
        return [h.event() for h in receiver.ok("/hook") if h.event()["type"] == event_type]

    try:
        with tmpfs(thumbs, "48m"):
            async with api(config) as (app, client):
                assert app.db is not None and app.events is not None and app.queue is not None
                # a receiver for every event, and one that answers with a redirect (never followed:
                # a failure) to the album events, so it is turned off after one failure
                await app.db.write(lambda c: create_webhook(c, receiver.url("/hook"), [], SECRET))
                await app.db.write(lambda c: create_webhook(c, receiver.url("/moved"), ["album.created"], SECRET))
                app.events.bus.durable_names |= {"webhook:1", "webhook:2"}
                await app.events.start_transports()
                root = f"shoebox/{app.events.instance_id}"
                await add_user(app, "ann", Role.ADMIN)
                h = auth(await login(client, "ann"))

                # indexing and tagging: index.started/finished, photo.added/indexed, label.created,
                # face.detected
                await app.scan()
                await app.queue.wait_idle()
                ids = await photo_ids(app)

                # people: name both faces' clusters (person.named)
                def cluster_of(photo: str) -> Any:
                    return app.db.scalar(  # type: ignore[union-attr]
                        "SELECT c.uid FROM faces f JOIN clusters c ON c.id = f.cluster_id JOIN photos p"
                        " ON p.id = f.photo_id WHERE p.uid = ?", (ids[photo],))

                named = []
                for photo, name in (("obama.jpg", "Barack Obama"), ("biden.jpg", "Someone Else")):
                    r = await client.post(f"/api/v1/clusters/{await cluster_of(photo)}/name", json={"name": name},
                                          headers=h)
                    assert r.status == 201
                    named.append((await r.json())["person"])

                # an upload (photo.uploaded) of another photo of him: tagged, and recognised
                jpeg = (samples / "faces/obama2.jpg").read_bytes()
                r = await client.post("/api/v1/uploads", data=form("obama2.jpg", jpeg), headers=h)
                assert r.status in (201, 202), await r.text()
                await app.queue.wait_idle()
                # then one person merged into the other (person.merged)
                r = await client.post(f"/api/v1/people/{named[1]}/merge", json={"into": named[0]}, headers=h)
                assert r.status == 200

                # edits: archive and restore (photo.archived, photo.updated), a label by hand
                # (label.updated), an album made, filled and deleted, a share made and opened
                falcon = ids["prairie_falcon.jpg"]
                assert (await client.post(f"/api/v1/photos/{falcon}/archive", headers=h)).status == 200
                assert (await client.post(f"/api/v1/photos/{falcon}/restore", headers=h)).status == 200
                r = await client.post(f"/api/v1/photos/{falcon}/labels", json={"name": "Holiday"}, headers=h)
                assert r.status == 201
                r = await client.post("/api/v1/albums", json={"title": "Birds", "photos": [falcon]}, headers=h)
                album = (await r.json())["id"]
                r = await client.post(f"/api/v1/albums/{album}/photos", json={"ids": [ids["obama.jpg"]]}, headers=h)
                assert r.status == 200
                r = await client.post("/api/v1/shares", json={"album": album}, headers=h)
                assert r.status == 201
                token = (await r.json())["token"]
                assert (await client.get(f"/api/v1/s/{token}")).status == 200  # a guest opens it
                assert (await client.delete(f"/api/v1/albums/{album}", headers=h)).status == 204

                # an import from a folder on the server (import.finished)
                incoming = tmp_path / "incoming"
                copy_sample(samples, "exif-samples/jpg/Canon_40D.jpg", incoming)
                r = await client.post("/api/v1/import", json={"folder": str(incoming)}, headers=h)
                assert r.status == 202, await r.text()
                await wait_until_async(lambda: hooked("import.finished"), 60, what="the import to finish")

                # the library's drive goes away and comes back (library.offline, library.online)
                away = tmp_path / "unplugged"
                library.rename(away)
                library.mkdir()
                await app.scan()
                library.rmdir()
                away.rename(library)
                await app.scan()

                # the thumbnail disk fills up and is freed again (storage.full, storage.ok)
                await app.queue.wait_idle()
                filler = await asyncio.to_thread(fill, thumbs)
                copy_sample(samples, "exif-samples/jpg/Nikon_D70.jpg", library / "later")
                await app.scan()
                await wait_until_async(lambda: app.storage is not None and app.storage.paused, 30,
                                       what="indexing to pause for the full disk")
                filler.unlink()
                await wait_until_async(lambda: app.storage is not None and not app.storage.paused, 30,
                                       what="indexing to resume")

                # the command line renames him while the daemon runs: its person.named reaches both too
                await asyncio.to_thread(shoebox, "people", "rename", named[0], "Barack H. Obama", "--library",
                                        str(library), "--data", str(data))
                await wait_until_async(lambda: [e for e in hooked("person.named")
                                                if e["data"].get("old_name") == "Barack Obama"], 30,
                                       what="person.named of the rename on the command line")

                # home automation sends a command Shoebox does not know (error)
                await asyncio.to_thread(home.publish, f"{root}/cmd/reboot", "")

                # everything arrives both ways; a type nothing raised is named
                def missing() -> list[str]:
                    return [t for t in EVENT_TYPES if not mqtt_events(home, t) or not hooked(t)]

                try:
                    await wait_until_async(lambda: not missing(), 60, what="every event type")
                except AssertionError:
                    raise AssertionError(
                        "event types never received (over MQTT: "
                        f"{[t for t in EVENT_TYPES if not mqtt_events(home, t)]}, by the webhook: "
                        f"{[t for t in EVENT_TYPES if not hooked(t)]})") from None

                # the same events both ways: one id per event, whichever way it came
                for event_type in EVENT_TYPES:
                    assert {e["id"] for e in mqtt_events(home, event_type)} & {e["id"] for e in hooked(event_type)}, \
                        event_type
                recognized = mqtt_events(home, "person.recognized")[0]["data"]
                assert recognized["person"] == "Barack Obama"
                uploaded = hooked("photo.uploaded")[0]["data"]
                assert uploaded["user"] == "ann" and uploaded["name"] == "obama2.jpg"
                assert uploaded["path"].endswith(".jpg") and uploaded["size"] == len(jpeg)
                merged = hooked("person.merged")[0]["data"]
                assert merged["person"] == "Barack Obama" and merged["merged_name"] == "Someone Else"
                assert token not in str(hooked("share.created")), "the share token never leaves in an event"
                assert hooked("share.viewed")[0]["data"]["views"] == 1
                assert hooked("album.deleted")[0]["data"]["album"] == album
                assert hooked("label.updated")[0]["data"] == {"label": "Holiday", "photo": falcon, "changes": ["added"]}
                assert hooked("webhook.disabled")[0]["data"]["webhook"] == 2
    finally:
        home.close()
        broker.stop()
        await receiver.stop()
        shutil.rmtree(tmp_path / "unplugged", ignore_errors=True)

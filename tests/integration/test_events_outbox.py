"""Photo events commit together with the photo they describe (the transactional outbox)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from daemon.app import App
from daemon.events.webhooks import create_webhook
from daemon.library.indexer import StoreOutcome
from daemon.store.db import Stage
from tests.conftest import copy_sample
from tests.integration.support import make_config, query


def counts(data: Path) -> tuple[int, int]:
    row = query(data, "SELECT (SELECT count(*) FROM photos WHERE primary_file_id IS NOT NULL),"
                      " (SELECT count(*) FROM events WHERE type = 'photo.added')")[0]
    return row[0], row[1]


async def test_a_photo_and_its_events_commit_or_roll_back_together(library: Path, tmp_path: Path, samples: Path) -> None:
    copy_sample(samples, "exif-samples/jpg/Canon_40D.jpg", library)
    data = tmp_path / "data"
    config = make_config(library, data, tagging__enabled="false", index__job_retries="0")
    app = App(config)
    await app.start()
    try:
        assert app.db is not None and app.indexer is not None and app.events is not None
        # a webhook subscription keeps events in the outbox (nothing delivers them here)
        await app.db.write(lambda c: create_webhook(c, "http://127.0.0.1:9/hook", ["photo.*"], "s" * 20))
        app.events.bus.durable_names.add("webhook:1")

        def power_cut(conn: sqlite3.Connection, outcome: StoreOutcome, stage: Stage) -> None:
            if outcome.photo_id is not None:
                raise RuntimeError("power cut inside the store transaction")

        # the events were staged before this hook raised: the rollback must take them too
        app.indexer.tx_hooks.append(power_cut)
        await app.index_once()
        assert counts(data) == (0, 0)
        assert query(data, "SELECT state FROM files")[0]["state"] == "error"

        app.indexer.tx_hooks.remove(power_cut)
        await app.db.write(lambda c: c.execute("UPDATE files SET mtime_ns = mtime_ns + 1"))
        await app.index_once()
    finally:
        await app.stop()
    assert counts(data) == (1, 1)

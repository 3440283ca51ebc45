-- Events: a persistent outbox, one delivery cursor per durable transport, webhook subscriptions
-- and their delivery log.
--
-- Why an outbox: MQTT brokers go away, receivers go down, the daemon restarts. Every event is
-- written here first (seq gives the one order every transport delivers in); each durable
-- transport ("mqtt", "webhook:<id>") keeps the seq of the last event it delivered, and rows every
-- transport has delivered are deleted. The table is bounded by the [events] outbox_max setting;
-- anything cut by the bound is counted in meta 'events.dropped'.

CREATE TABLE events (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,   -- delivery order, never reused
    id    TEXT NOT NULL UNIQUE,                -- ULID: what receivers de-duplicate by
    type  TEXT NOT NULL,
    time  TEXT NOT NULL,                       -- UTC ISO-8601
    data  TEXT NOT NULL DEFAULT '{}'           -- JSON object
);

CREATE TABLE event_cursors (
    transport  TEXT PRIMARY KEY,               -- "mqtt", "webhook:<id>"
    seq        INTEGER NOT NULL,               -- last event delivered (or skipped as not wanted)
    updated_at TEXT NOT NULL
);

CREATE TABLE webhooks (
    id              INTEGER PRIMARY KEY,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL DEFAULT '[]',  -- JSON array of types ("photo.added", "photo.*"); [] = all
    secret          TEXT NOT NULL,
    enabled         INTEGER NOT NULL DEFAULT 1,
    failures        INTEGER NOT NULL DEFAULT 0,  -- failed attempts in a row (reset by a success)
    retry_at        REAL,                        -- unix time of the next attempt after a failure
    disabled_reason TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id          INTEGER PRIMARY KEY,
    webhook_id  INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    attempt     INTEGER NOT NULL,                -- 1 for the first try of this event
    ok          INTEGER NOT NULL,
    status      INTEGER,                         -- HTTP status, NULL when no answer
    latency_ms  REAL,
    error       TEXT,
    at          TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_by_hook ON webhook_deliveries (webhook_id, id);

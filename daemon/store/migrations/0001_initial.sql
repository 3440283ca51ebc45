-- The library index: photos, the files that make them, persistent jobs and scan history.
-- Timestamps are UTC ISO-8601 text ("2026-11-24T01:38:47Z"); taken_at is the local wall-clock
-- time where the photo was taken, with taken_offset (minutes east of UTC) when known.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE photos (
    id                 INTEGER PRIMARY KEY,
    uid                TEXT NOT NULL UNIQUE,          -- stable public id, survives moves and renames
    type               TEXT NOT NULL DEFAULT 'image'
                       CHECK (type IN ('image', 'raw', 'video', 'live', 'animated')),
    primary_file_id    INTEGER,                       -- the file whose pixels make the thumbnails
    thumb_key          TEXT,                          -- content hash the thumbnails are named by
    taken_at           TEXT,
    taken_offset       INTEGER,
    taken_at_utc       TEXT,
    make               TEXT,
    model              TEXT,
    lens               TEXT,
    software           TEXT,
    iso                INTEGER,
    f_number           REAL,
    exposure_time      REAL,
    focal_length       REAL,
    focal_length_35    REAL,
    lat                REAL,
    lng                REAL,
    alt                REAL,
    orientation        INTEGER,
    width              INTEGER,
    height             INTEGER,
    rating             INTEGER,
    title              TEXT,
    description        TEXT,
    keywords           TEXT NOT NULL DEFAULT '[]',    -- JSON array of strings
    content_identifier TEXT,                          -- Apple Live Photo pairing id
    duration           REAL,
    video_codec        TEXT,
    audio_codec        TEXT,
    fps                REAL,
    motion_offset      INTEGER,                       -- embedded motion-photo video: byte offset
    motion_length      INTEGER,
    city               TEXT,
    region             TEXT,
    country            TEXT,
    country_code       TEXT,
    main_color         TEXT,
    color_grid         TEXT,                          -- JSON array of 9 colour names, row-major
    luminance          REAL,
    chroma             INTEGER,
    mono               INTEGER,
    shape              TEXT,
    megapixels         REAL,
    phash              TEXT,
    placeholder        TEXT,                          -- blurhash
    sharpness          REAL,
    quality            INTEGER,
    review             INTEGER NOT NULL DEFAULT 0,
    favorite           INTEGER NOT NULL DEFAULT 0,
    private            INTEGER NOT NULL DEFAULT 0,
    archived           INTEGER NOT NULL DEFAULT 0,
    offline            INTEGER NOT NULL DEFAULT 0,
    sources            TEXT NOT NULL DEFAULT '{}',    -- JSON: field -> source (estimate ... manual)
    added_at           TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    indexed_at         TEXT
);
CREATE INDEX photos_taken ON photos (taken_at);
CREATE INDEX photos_content_identifier ON photos (content_identifier) WHERE content_identifier IS NOT NULL;
CREATE INDEX photos_phash ON photos (phash);
CREATE INDEX photos_country ON photos (country_code);

CREATE TABLE files (
    id               INTEGER PRIMARY KEY,
    photo_id         INTEGER REFERENCES photos (id) ON DELETE SET NULL,
    path             BLOB NOT NULL UNIQUE,            -- relative to the library root, raw bytes
    path_text        TEXT NOT NULL,                   -- the same, readable (invalid UTF-8 escaped)
    dir              BLOB NOT NULL,                   -- parent folder, raw bytes ('' at the root)
    stem             TEXT NOT NULL,                   -- lower-case name without extension, for stacks
    kind             TEXT NOT NULL CHECK (kind IN ('image', 'raw', 'video', 'sidecar')),
    role             TEXT CHECK (role IN ('primary', 'raw', 'live', 'video', 'alternate', 'sidecar')),
    mime             TEXT,
    size             INTEGER NOT NULL,
    mtime_ns         INTEGER NOT NULL,
    inode            INTEGER,
    sha1             TEXT,
    state            TEXT NOT NULL DEFAULT 'new'
                     CHECK (state IN ('new', 'indexed', 'error', 'duplicate')),
    error            TEXT,                            -- why the file could not be indexed
    warnings         TEXT,                            -- JSON list: what was read only in part
    duplicate_of     INTEGER REFERENCES files (id) ON DELETE SET NULL,
    indexed_size     INTEGER,                         -- size and mtime that the index reflects
    indexed_mtime_ns INTEGER,
    offline          INTEGER NOT NULL DEFAULT 0,
    missing_since    TEXT,
    first_seen       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX files_photo ON files (photo_id);
CREATE INDEX files_sha1 ON files (sha1);
CREATE INDEX files_stack ON files (dir, stem);
CREATE INDEX files_state ON files (state);

-- Work that must survive a crash: a job row exists until its result is committed, in the same
-- transaction that stores the result, so a kill -9 at any point loses nothing and duplicates nothing.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,                         -- index | tag | ...
    file_id     INTEGER REFERENCES files (id) ON DELETE CASCADE,
    photo_id    INTEGER REFERENCES photos (id) ON DELETE CASCADE,
    priority    INTEGER NOT NULL,                      -- lower runs first
    state       TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX jobs_file ON jobs (kind, file_id) WHERE file_id IS NOT NULL;
CREATE UNIQUE INDEX jobs_photo ON jobs (kind, photo_id) WHERE photo_id IS NOT NULL AND file_id IS NULL;
CREATE INDEX jobs_next ON jobs (state, priority, id);

CREATE TABLE scans (
    id          INTEGER PRIMARY KEY,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'done', 'skipped', 'failed')),
    reason      TEXT,                                  -- why a scan was skipped or failed
    seen        INTEGER NOT NULL DEFAULT 0,
    added       INTEGER NOT NULL DEFAULT 0,
    changed     INTEGER NOT NULL DEFAULT 0,
    moved       INTEGER NOT NULL DEFAULT 0,
    offline     INTEGER NOT NULL DEFAULT 0,
    online      INTEGER NOT NULL DEFAULT 0,
    ignored     INTEGER NOT NULL DEFAULT 0
);

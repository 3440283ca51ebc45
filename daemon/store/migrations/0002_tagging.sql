-- Tagging: labels from the classifier, faces, clusters of faces and the people users name.
-- A user's decisions (a removed label, a face rejected from a person, a named cluster) are rows
-- of their own, so re-tagging and re-clustering can never undo them.

CREATE TABLE labels (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,   -- friendly name: "cat", "espresso"
    categories  TEXT NOT NULL DEFAULT '[]',            -- JSON parents, nearest first: ["animal"]
    priority    INTEGER NOT NULL DEFAULT 0,
    hidden      INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL
);

CREATE TABLE photo_labels (
    photo_id    INTEGER NOT NULL REFERENCES photos (id) ON DELETE CASCADE,
    label_id    INTEGER NOT NULL REFERENCES labels (id) ON DELETE CASCADE,
    confidence  REAL NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('image', 'manual')),
    removed     INTEGER NOT NULL DEFAULT 0,            -- removed by a user: stays removed
    PRIMARY KEY (photo_id, label_id)
) WITHOUT ROWID;
CREATE INDEX photo_labels_label ON photo_labels (label_id, photo_id);

CREATE TABLE people (
    id          INTEGER PRIMARY KEY,
    uid         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    hidden      INTEGER NOT NULL DEFAULT 0,
    favorite    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX people_name ON people (name COLLATE NOCASE);

CREATE TABLE clusters (
    id          INTEGER PRIMARY KEY,
    uid         TEXT NOT NULL UNIQUE,
    person_id   INTEGER REFERENCES people (id) ON DELETE SET NULL,  -- set when a user names it
    hidden      INTEGER NOT NULL DEFAULT 0,
    centroid    BLOB,                                  -- float32[192], L2-normalised mean
    size        INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE faces (
    id            INTEGER PRIMARY KEY,
    uid           TEXT NOT NULL UNIQUE,
    photo_id      INTEGER NOT NULL REFERENCES photos (id) ON DELETE CASCADE,
    x             REAL NOT NULL,                       -- box relative to the oriented photo, 0..1
    y             REAL NOT NULL,
    w             REAL NOT NULL,
    h             REAL NOT NULL,
    score         REAL NOT NULL,
    keypoints     TEXT NOT NULL,                       -- JSON [[x, y], ...] relative, 6 points
    embedding     BLOB NOT NULL,                       -- float32[192], L2-normalised
    cluster_id    INTEGER REFERENCES clusters (id) ON DELETE SET NULL,
    person_id     INTEGER REFERENCES people (id) ON DELETE SET NULL,
    person_source TEXT CHECK (person_source IN ('auto', 'manual')),
    similarity    REAL,                                -- to the person it was matched to
    hidden        INTEGER NOT NULL DEFAULT 0,
    crop_key      TEXT,                                -- file name of the face thumbnail
    created_at    TEXT NOT NULL
);
CREATE INDEX faces_photo ON faces (photo_id);
CREATE INDEX faces_person ON faces (person_id);
CREATE INDEX faces_cluster ON faces (cluster_id);

-- "This face is not that person / does not belong to that cluster": never undone automatically.
CREATE TABLE face_rejections (
    face_id     INTEGER NOT NULL REFERENCES faces (id) ON DELETE CASCADE,
    person_id   INTEGER REFERENCES people (id) ON DELETE CASCADE,
    cluster_id  INTEGER REFERENCES clusters (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL
);
CREATE INDEX face_rejections_face ON face_rejections (face_id);

ALTER TABLE photos ADD COLUMN tagged_at TEXT;          -- when labels and faces were last made
ALTER TABLE photos ADD COLUMN tag_models TEXT;         -- JSON: which models made them (re-tag on change)
ALTER TABLE photos ADD COLUMN nsfw REAL;               -- not-safe-for-work score 0..1 when that model runs

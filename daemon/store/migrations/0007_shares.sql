-- Share links: a guest with the link sees one album or a selection of photos, nothing else.
--
-- The link's token is a random secret shown once to its creator; only its SHA-256 is kept (it is
-- not guessable like a password, so no slow hash is needed), so a copy of the database opens no
-- link. An optional password is an argon2id hash (daemon.auth.passwords); a guest who gives it
-- gets a short-lived share session (share_sessions, also kept as a SHA-256). Revoking a link ends
-- its sessions with it; deleting its album, or the user who made it, deletes the link.

CREATE TABLE shares (
    id             INTEGER PRIMARY KEY,
    uid            TEXT NOT NULL UNIQUE,                 -- public id for the owner's listings
    token_hash     TEXT NOT NULL UNIQUE,                 -- SHA-256 of the link's token
    kind           TEXT NOT NULL CHECK (kind IN ('album', 'selection')),
    album_id       INTEGER REFERENCES albums (id) ON DELETE CASCADE,
    title          TEXT,                                 -- NULL: the album's title
    description    TEXT,
    password_hash  TEXT,                                 -- argon2id; NULL: no password
    download       INTEGER NOT NULL DEFAULT 0,           -- originals may be downloaded
    expires_at     TEXT,                                 -- UTC; NULL: until revoked
    views          INTEGER NOT NULL DEFAULT 0,
    last_viewed_at TEXT,
    created_by     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     TEXT NOT NULL,
    revoked_at     TEXT,
    CHECK ((kind = 'album') = (album_id IS NOT NULL))
);
CREATE INDEX shares_creator ON shares (created_by);
CREATE INDEX shares_album ON shares (album_id) WHERE album_id IS NOT NULL;

-- The photos of a selection (kind 'selection'); a photo deleted from the library leaves it.
CREATE TABLE share_photos (
    share_id  INTEGER NOT NULL REFERENCES shares (id) ON DELETE CASCADE,
    photo_id  INTEGER NOT NULL REFERENCES photos (id) ON DELETE CASCADE,
    PRIMARY KEY (share_id, photo_id)
) WITHOUT ROWID;
CREATE INDEX share_photos_photo ON share_photos (photo_id);

-- A guest who gave a link's password: a random token (SHA-256 kept) valid until expires_at.
CREATE TABLE share_sessions (
    token_hash  TEXT PRIMARY KEY,
    share_id    INTEGER NOT NULL REFERENCES shares (id) ON DELETE CASCADE,
    expires_at  TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX share_sessions_share ON share_sessions (share_id);

-- Accounts: users with a role, login sessions (refresh tokens), app tokens for scripts.
-- There is no default user and no default password: the first admin is made by
-- `shoebox users add NAME --role admin` or by the one-time setup route while no admin exists.
-- Secrets are never stored: passwords as argon2id hashes, tokens as SHA-256 of random values.

CREATE TABLE users (
    id                  INTEGER PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE COLLATE NOCASE,
    role                TEXT NOT NULL CHECK (role IN ('admin', 'user', 'viewer')),
    password_hash       TEXT NOT NULL,                 -- argon2id, PHC string with its parameters
    failed_logins       INTEGER NOT NULL DEFAULT 0,    -- consecutive failures since the last success
    locked_until        TEXT,                          -- UTC; set after too many failures (survives restarts)
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    password_changed_at TEXT NOT NULL
);

-- One row per login. The refresh token rotates on every use; presenting the previous one again
-- (a stolen copy) revokes the whole session.
CREATE TABLE sessions (
    id                INTEGER PRIMARY KEY,
    uid               TEXT NOT NULL UNIQUE,            -- public id, also the `sid` in access tokens
    user_id           INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_hash      TEXT NOT NULL UNIQUE,
    prev_refresh_hash TEXT,
    address           TEXT,
    user_agent        TEXT,
    created_at        TEXT NOT NULL,
    last_used_at      TEXT NOT NULL,
    expires_at        TEXT NOT NULL,                   -- slides forward on each refresh
    revoked_at        TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_prev_refresh ON sessions (prev_refresh_hash) WHERE prev_refresh_hash IS NOT NULL;

-- Long-lived tokens for scripts and home automation, limited to scopes (read, write, admin,
-- thumbnails) and never more than their owner's role allows.
CREATE TABLE app_tokens (
    id           INTEGER PRIMARY KEY,
    uid          TEXT NOT NULL UNIQUE,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,                        -- JSON array
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    expires_at   TEXT,                                 -- NULL: until revoked
    revoked_at   TEXT
);
CREATE INDEX app_tokens_user ON app_tokens (user_id);

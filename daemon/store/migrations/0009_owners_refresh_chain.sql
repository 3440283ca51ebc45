-- Least privilege (issue 9, point 7).
--
-- Albums get an owner: users may change or delete only their own albums, admins any. Albums made
-- before this version belong to the first admin (the lowest id); with no admin yet they stay
-- NULL, which means "admin-only edit". Deleting a user leaves their albums to the admins (NULL).
ALTER TABLE albums ADD COLUMN owner INTEGER REFERENCES users (id) ON DELETE SET NULL;
UPDATE albums SET owner = (SELECT min(id) FROM users WHERE role = 'admin');
CREATE INDEX albums_owner ON albums (owner);

-- Every refresh token a session has handed out and replaced. Presenting any of them again (not
-- only the one just before the current) means a copy was stolen: the session ends. Rows go with
-- their session (sessions are pruned 30 days after they end).
CREATE TABLE refresh_history (
    refresh_hash TEXT PRIMARY KEY,
    session_id   INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX refresh_history_session ON refresh_history (session_id);
INSERT OR IGNORE INTO refresh_history (refresh_hash, session_id)
    SELECT prev_refresh_hash, id FROM sessions WHERE prev_refresh_hash IS NOT NULL;

-- When each user last logged in, for the admins' list of accounts (GET /api/v1/users).
--
-- Kept on the user, not read from sessions: sessions are pruned 30 days after they end, and a
-- "last login" that forgets someone who has not logged in for two months would hide exactly the
-- account an admin is looking for. NULL: no login since this version (or ever).
ALTER TABLE users ADD COLUMN last_login_at TEXT;

-- Transient and permanent failures are told apart (issue 10, point 1).
--
-- A job that meets a transient failure (its file or the whole library gone for now, a dropping
-- share, our disk full) is not an attempt and not an error: it waits until `not_before`, with a
-- backoff that doubles per wait (`waits`), and a scan that sees the file (or the library) again
-- clears the wait at once. `wait_reason`: library | gone | file | storage.
ALTER TABLE jobs ADD COLUMN not_before TEXT;
ALTER TABLE jobs ADD COLUMN waits INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN wait_reason TEXT;

-- A permanent error keeps the version of the software that judged it: a scan re-queues the file
-- when that version differs from the running one (an upgrade may read what the old one could
-- not). Errors recorded before this column existed (NULL) are therefore tried once more, which
-- also heals the "No such file or directory" errors that a vanished drive used to leave.
ALTER TABLE files ADD COLUMN error_version TEXT;

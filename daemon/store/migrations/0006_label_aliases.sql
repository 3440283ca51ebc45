-- Collections through the API: a renamed label keeps its old name as an alias, and the full-text
-- triggers stay correct when an insert into photo_labels is ignored.
--
-- Why aliases: the classifier names labels by its own vocabulary ("cat"). When a user renames
-- "cat" to "Minou" (or merges it into an existing "kitty"), the next re-tag would otherwise bring
-- "cat" back and drop the renamed rows. The old name is kept here; a trigger sends every new
-- photo_labels row of a label carrying an alias name to the label it was renamed to, and the
-- label the tagger re-creates under the old name is hidden at once. The tagger needs no change.

CREATE TABLE label_aliases (
    name        TEXT PRIMARY KEY COLLATE NOCASE,        -- a name the label had before
    label_id    INTEGER NOT NULL REFERENCES labels (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL
);
CREATE INDEX label_aliases_label ON label_aliases (label_id);

-- Migration 0003's BEFORE INSERT trigger fed FTS5 the photo's old text even when the insert was
-- then ignored (INSERT ... ON CONFLICT DO NOTHING / OR IGNORE on an existing row: a label the
-- user removed, or added by hand, that the classifier finds again). The AFTER trigger does not run
-- for an ignored row, so the photo's words were deleted from the index and never put back. Only
-- feed the old text when the row is really new.
DROP TRIGGER search_photo_labels_bi;
CREATE TRIGGER search_photo_labels_bi BEFORE INSERT ON photo_labels
WHEN NOT EXISTS (SELECT 1 FROM photo_labels WHERE photo_id = NEW.photo_id AND label_id = NEW.label_id) BEGIN
    INSERT INTO photos_fts (photos_fts, rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT 'delete', * FROM photo_search_text WHERE photo_id = NEW.photo_id;
END;

-- Created after search_photo_labels_bi so SQLite runs it first (newest trigger first): RAISE(IGNORE)
-- then abandons the original insert and the triggers not yet run for it, so the full-text index
-- sees only the redirected insert, whose own triggers keep it right.
CREATE TRIGGER label_aliases_redirect BEFORE INSERT ON photo_labels
WHEN EXISTS (SELECT 1 FROM labels AS l JOIN label_aliases AS a ON a.name = l.name
              WHERE l.id = NEW.label_id AND a.label_id != l.id) BEGIN
    INSERT OR IGNORE INTO photo_labels (photo_id, label_id, confidence, source, removed)
    SELECT NEW.photo_id, a.label_id, NEW.confidence, NEW.source, NEW.removed
      FROM labels AS l JOIN label_aliases AS a ON a.name = l.name
     WHERE l.id = NEW.label_id;
    SELECT RAISE(IGNORE);
END;

-- The classifier re-creates a label under a name that is now an alias: hide that empty shell.
CREATE TRIGGER label_aliases_hide_shell AFTER INSERT ON labels
WHEN EXISTS (SELECT 1 FROM label_aliases WHERE name = NEW.name AND label_id != NEW.id) BEGIN
    UPDATE labels SET hidden = 1 WHERE id = NEW.id;
END;

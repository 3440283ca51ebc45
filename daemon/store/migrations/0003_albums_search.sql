-- Albums (hand-made and smart) and the search index.
--
-- Full text: photos_fts is an FTS5 index whose "content" is the view photo_search_text, so the
-- words are not stored a second time: the view assembles them from photos, files, labels, faces
-- and people when FTS5 needs them. SQLite 3.40 (Debian 12, Raspberry Pi OS) has no
-- contentless_delete, so removing a photo's old words needs the words as they were indexed: every
-- trigger below runs in pairs, a BEFORE trigger that feeds the view's current (old) text to
-- FTS5's 'delete' command and an AFTER trigger that indexes the new text. Writers do nothing
-- special; `daemon.search.fts.rebuild_search_index` repairs the index if it ever drifts.

CREATE TABLE albums (
    id             INTEGER PRIMARY KEY,
    uid            TEXT NOT NULL UNIQUE,                 -- stable public id
    type           TEXT NOT NULL DEFAULT 'album' CHECK (type IN ('album', 'smart')),
    title          TEXT NOT NULL CHECK (length(trim(title)) > 0),
    description    TEXT,
    query          TEXT,                                 -- search language, for smart albums
    cover_photo_id INTEGER REFERENCES photos (id) ON DELETE SET NULL,  -- NULL: the first photo
    sort_order     TEXT NOT NULL DEFAULT 'position'      -- how the album shows its photos
                   CHECK (sort_order IN ('position', 'newest', 'oldest', 'added')),
    favorite       INTEGER NOT NULL DEFAULT 0,
    private        INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    CHECK ((type = 'smart') = (query IS NOT NULL))
);
CREATE INDEX albums_title ON albums (title COLLATE NOCASE);

CREATE TABLE album_photos (
    album_id  INTEGER NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
    photo_id  INTEGER NOT NULL REFERENCES photos (id) ON DELETE CASCADE,
    position  REAL NOT NULL,                             -- REAL: a photo moved between 2 and 3 gets 2.5
    added_at  TEXT NOT NULL,
    PRIMARY KEY (album_id, photo_id)
) WITHOUT ROWID;
CREATE INDEX album_photos_photo ON album_photos (photo_id, album_id);
CREATE INDEX album_photos_position ON album_photos (album_id, position);

-- Indexes for search filters and orders (measured with EXPLAIN QUERY PLAN on the 1M bench store).
CREATE INDEX photos_added ON photos (added_at);
CREATE INDEX photos_latlng ON photos (lat, lng) WHERE lat IS NOT NULL;
CREATE INDEX files_stem ON files (stem);

-- One row per photo: the words search finds it by. Column order matches photos_fts.
-- JSON arrays are unrolled with json_extract in a recursive CTE, not json_each: FTS5 cannot read
-- its content through a table-valued function (SQLite 3.40 fails with "SQL logic error").
CREATE VIEW photo_search_text AS
SELECT
    p.id AS photo_id,
    p.title AS title,
    p.description AS description,
    (WITH RECURSIVE k (i, word) AS (
        SELECT 0, NULL
        UNION ALL
        SELECT i + 1, json_extract(p.keywords, '$[' || i || ']') FROM k
         WHERE i < CASE WHEN json_valid(p.keywords) THEN json_array_length(p.keywords) ELSE 0 END)
     SELECT group_concat(word, ' ') FROM k) AS keywords,
    (SELECT group_concat(t, ' ') FROM (
        SELECT l.name || coalesce(' ' || (
                   WITH RECURSIVE c (i, word) AS (
                       SELECT 0, NULL
                       UNION ALL
                       SELECT i + 1, json_extract(l.categories, '$[' || i || ']') FROM c
                        WHERE i < CASE WHEN json_valid(l.categories) THEN json_array_length(l.categories) ELSE 0 END)
                   SELECT group_concat(word, ' ') FROM c), '') AS t
          FROM photo_labels AS pl JOIN labels AS l ON l.id = pl.label_id
         WHERE pl.photo_id = p.id AND pl.removed = 0 AND l.hidden = 0
         ORDER BY l.id)) AS labels,
    (SELECT group_concat(n, ' ') FROM (
        SELECT DISTINCT pe.name AS n FROM faces AS f JOIN people AS pe ON pe.id = f.person_id
         WHERE f.photo_id = p.id AND f.hidden = 0 ORDER BY pe.id)) AS people,
    trim(coalesce(p.city, '') || ' ' || coalesce(p.region, '') || ' ' || coalesce(p.country, '')) AS places,
    (SELECT group_concat(path_text, ' ') FROM (
        SELECT f.path_text FROM files AS f WHERE f.photo_id = p.id ORDER BY f.id)) AS files,
    trim(coalesce(p.make, '') || ' ' || coalesce(p.model, '') || ' ' || coalesce(p.lens, '')) AS camera
FROM photos AS p;

CREATE VIRTUAL TABLE photos_fts USING fts5(
    title, description, keywords, labels, people, places, files, camera,
    content = 'photo_search_text', content_rowid = 'photo_id',
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3'
);

-- photos: its own text columns (camera make, model and lens are searchable words too).
CREATE TRIGGER search_photos_ai AFTER INSERT ON photos BEGIN
    INSERT INTO photos_fts (rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT * FROM photo_search_text WHERE photo_id = NEW.id;
END;
CREATE TRIGGER search_photos_bu BEFORE UPDATE OF title, description, keywords, city, region, country, make, model, lens ON photos
WHEN OLD.title IS NOT NEW.title OR OLD.description IS NOT NEW.description OR OLD.keywords IS NOT NEW.keywords
  OR OLD.city IS NOT NEW.city OR OLD.region IS NOT NEW.region OR OLD.country IS NOT NEW.country
  OR OLD.make IS NOT NEW.make OR OLD.model IS NOT NEW.model OR OLD.lens IS NOT NEW.lens BEGIN
    INSERT INTO photos_fts (photos_fts, rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT 'delete', * FROM photo_search_text WHERE photo_id = OLD.id;
END;
CREATE TRIGGER search_photos_au AFTER UPDATE OF title, description, keywords, city, region, country, make, model, lens ON photos
WHEN OLD.title IS NOT NEW.title OR OLD.description IS NOT NEW.description OR OLD.keywords IS NOT NEW.keywords
  OR OLD.city IS NOT NEW.city OR OLD.region IS NOT NEW.region OR OLD.country IS NOT NEW.country
  OR OLD.make IS NOT NEW.make OR OLD.model IS NOT NEW.model OR OLD.lens IS NOT NEW.lens BEGIN
    INSERT INTO photos_fts (rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT * FROM photo_search_text WHERE photo_id = NEW.id;
END;
CREATE TRIGGER search_photos_bd BEFORE DELETE ON photos BEGIN
    INSERT INTO photos_fts (photos_fts, rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT 'delete', * FROM photo_search_text WHERE photo_id = OLD.id;
END;

-- files: names of files and folders.
CREATE TRIGGER search_files_bi BEFORE INSERT ON files WHEN NEW.photo_id IS NOT NULL BEGIN
    INSERT INTO photos_fts (photos_fts, rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT 'delete', * FROM photo_search_text WHERE photo_id = NEW.photo_id;
END;
CREATE TRIGGER search_files_ai AFTER INSERT ON files WHEN NEW.photo_id IS NOT NULL BEGIN
    INSERT INTO photos_fts (rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT * FROM photo_search_text WHERE photo_id = NEW.photo_id;
END;
CREATE TRIGGER search_files_bu BEFORE UPDATE OF photo_id, path_text ON files
WHEN OLD.photo_id IS NOT NEW.photo_id OR OLD.path_text IS NOT NEW.path_text BEGIN
    INSERT INTO photos_fts (photos_fts, rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT 'delete', * FROM photo_search_text WHERE photo_id IN (OLD.photo_id, NEW.photo_id);
END;
CREATE TRIGGER search_files_au AFTER UPDATE OF photo_id, path_text ON files
WHEN OLD.photo_id IS NOT NEW.photo_id OR OLD.path_text IS NOT NEW.path_text BEGIN
    INSERT INTO photos_fts (rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT * FROM photo_search_text WHERE photo_id IN (OLD.photo_id, NEW.photo_id);
END;
CREATE TRIGGER search_files_bd BEFORE DELETE ON files WHEN OLD.photo_id IS NOT NULL BEGIN
    INSERT INTO photos_fts (photos_fts, rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT 'delete', * FROM photo_search_text WHERE photo_id = OLD.photo_id;
END;
CREATE TRIGGER search_files_ad AFTER DELETE ON files WHEN OLD.photo_id IS NOT NULL BEGIN
    INSERT INTO photos_fts (rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT * FROM photo_search_text WHERE photo_id = OLD.photo_id;
END;

-- photo_labels: a photo's labels and their categories.
CREATE TRIGGER search_photo_labels_bi BEFORE INSERT ON photo_labels BEGIN
    INSERT INTO photos_fts (photos_fts, rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT 'delete', * FROM photo_search_text WHERE photo_id = NEW.photo_id;
END;
CREATE TRIGGER search_photo_labels_ai AFTER INSERT ON photo_labels BEGIN
    INSERT INTO photos_fts (rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT * FROM photo_search_text WHERE photo_id = NEW.photo_id;
END;
CREATE TRIGGER search_photo_labels_bu BEFORE UPDATE OF removed, label_id, photo_id ON photo_labels
WHEN OLD.removed IS NOT NEW.removed OR OLD.label_id IS NOT NEW.label_id OR OLD.photo_id IS NOT NEW.photo_id BEGIN
    INSERT INTO photos_fts (photos_fts, rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT 'delete', * FROM photo_search_text WHERE photo_id IN (OLD.photo_id, NEW.photo_id);
END;
CREATE TRIGGER search_photo_labels_au AFTER UPDATE OF removed, label_id, photo_id ON photo_labels
WHEN OLD.removed IS NOT NEW.removed OR OLD.label_id IS NOT NEW.label_id OR OLD.photo_id IS NOT NEW.photo_id BEGIN
    INSERT INTO photos_fts (rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT * FROM photo_search_text WHERE photo_id IN (OLD.photo_id, NEW.photo_id);
END;
CREATE TRIGGER search_photo_labels_bd BEFORE DELETE ON photo_labels BEGIN
    INSERT INTO photos_fts (photos_fts, rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT 'delete', * FROM photo_search_text WHERE photo_id = OLD.photo_id;
END;
CREATE TRIGGER search_photo_labels_ad AFTER DELETE ON photo_labels BEGIN
    INSERT INTO photos_fts (rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT * FROM photo_search_text WHERE photo_id = OLD.photo_id;
END;

-- labels: a renamed, re-categorised or hidden label changes every photo that carries it.
CREATE TRIGGER search_labels_bu BEFORE UPDATE OF name, categories, hidden ON labels
WHEN OLD.name IS NOT NEW.name OR OLD.categories IS NOT NEW.categories OR OLD.hidden IS NOT NEW.hidden BEGIN
    INSERT INTO photos_fts (photos_fts, rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT 'delete', * FROM photo_search_text
     WHERE photo_id IN (SELECT photo_id FROM photo_labels WHERE label_id = OLD.id);
END;
CREATE TRIGGER search_labels_au AFTER UPDATE OF name, categories, hidden ON labels
WHEN OLD.name IS NOT NEW.name OR OLD.categories IS NOT NEW.categories OR OLD.hidden IS NOT NEW.hidden BEGIN
    INSERT INTO photos_fts (rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT * FROM photo_search_text
     WHERE photo_id IN (SELECT photo_id FROM photo_labels WHERE label_id = NEW.id);
END;

-- faces: which named people a photo shows.
CREATE TRIGGER search_faces_bi BEFORE INSERT ON faces WHEN NEW.person_id IS NOT NULL BEGIN
    INSERT INTO photos_fts (photos_fts, rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT 'delete', * FROM photo_search_text WHERE photo_id = NEW.photo_id;
END;
CREATE TRIGGER search_faces_ai AFTER INSERT ON faces WHEN NEW.person_id IS NOT NULL BEGIN
    INSERT INTO photos_fts (rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT * FROM photo_search_text WHERE photo_id = NEW.photo_id;
END;
CREATE TRIGGER search_faces_bu BEFORE UPDATE OF person_id, hidden, photo_id ON faces
WHEN OLD.person_id IS NOT NEW.person_id OR OLD.hidden IS NOT NEW.hidden OR OLD.photo_id IS NOT NEW.photo_id BEGIN
    INSERT INTO photos_fts (photos_fts, rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT 'delete', * FROM photo_search_text WHERE photo_id IN (OLD.photo_id, NEW.photo_id);
END;
CREATE TRIGGER search_faces_au AFTER UPDATE OF person_id, hidden, photo_id ON faces
WHEN OLD.person_id IS NOT NEW.person_id OR OLD.hidden IS NOT NEW.hidden OR OLD.photo_id IS NOT NEW.photo_id BEGIN
    INSERT INTO photos_fts (rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT * FROM photo_search_text WHERE photo_id IN (OLD.photo_id, NEW.photo_id);
END;
CREATE TRIGGER search_faces_bd BEFORE DELETE ON faces WHEN OLD.person_id IS NOT NULL BEGIN
    INSERT INTO photos_fts (photos_fts, rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT 'delete', * FROM photo_search_text WHERE photo_id = OLD.photo_id;
END;
CREATE TRIGGER search_faces_ad AFTER DELETE ON faces WHEN OLD.person_id IS NOT NULL BEGIN
    INSERT INTO photos_fts (rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT * FROM photo_search_text WHERE photo_id = OLD.photo_id;
END;

-- people: a renamed person is found by the new name on every photo of theirs.
CREATE TRIGGER search_people_bu BEFORE UPDATE OF name ON people WHEN OLD.name IS NOT NEW.name BEGIN
    INSERT INTO photos_fts (photos_fts, rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT 'delete', * FROM photo_search_text
     WHERE photo_id IN (SELECT photo_id FROM faces WHERE person_id = OLD.id);
END;
CREATE TRIGGER search_people_au AFTER UPDATE OF name ON people WHEN OLD.name IS NOT NEW.name BEGIN
    INSERT INTO photos_fts (rowid, title, description, keywords, labels, people, places, files, camera)
    SELECT * FROM photo_search_text
     WHERE photo_id IN (SELECT photo_id FROM faces WHERE person_id = NEW.id);
END;

-- Deleting a label or a person: their rows in photo_labels / faces would change through foreign-key
-- actions only AFTER the parent row is gone, when the view can no longer produce the old text.
-- Detach them first, while it still can.
CREATE TRIGGER search_labels_bd BEFORE DELETE ON labels BEGIN
    DELETE FROM photo_labels WHERE label_id = OLD.id;
END;
CREATE TRIGGER search_people_bd BEFORE DELETE ON people BEGIN
    UPDATE faces SET person_id = NULL, person_source = NULL WHERE person_id = OLD.id;
END;

-- Photos indexed before this migration.
INSERT INTO photos_fts (photos_fts) VALUES ('rebuild');

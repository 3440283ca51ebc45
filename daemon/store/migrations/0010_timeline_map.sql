-- The web app's timeline, map and search box at a million photos.
-- Month buckets of the whole library are counted from this index alone (no table rows read).
CREATE INDEX photos_month ON photos (substr(taken_at, 1, 7))
    WHERE primary_file_id IS NOT NULL AND archived = 0 AND private = 0;
-- Map clusters and points of the whole library read positions from this index alone.
CREATE INDEX photos_geo ON photos (lat, lng, uid, thumb_key)
    WHERE lat IS NOT NULL AND primary_file_id IS NOT NULL AND archived = 0 AND private = 0;
-- Completions of place and camera names in the search box.
CREATE INDEX photos_city ON photos (city COLLATE NOCASE) WHERE city IS NOT NULL;
CREATE INDEX photos_model ON photos (model COLLATE NOCASE) WHERE model IS NOT NULL;

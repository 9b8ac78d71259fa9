-- Where workplaces are (their GPS point) and where visits were made, for the hub console's
-- map: one row per record that has a point. Filled by the rebuild of the index rows that
-- follows the migrations.
CREATE TABLE place_index (
    record    INTEGER PRIMARY KEY REFERENCES records(rowid),
    kind      INTEGER NOT NULL,
    latitude  REAL NOT NULL,
    longitude REAL NOT NULL
);

-- The hub console's review queue: submitted visits, those with forced-labour indicators first,
-- then those with a violation, then the longest waiting (`Scoped::review_queue`), read in this
-- order without sorting the whole queue.
CREATE INDEX visit_review_queue ON visit_index ((fl_mask != 0) DESC, violation DESC, started_ms, record)
    WHERE status = 'submitted';

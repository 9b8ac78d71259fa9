-- Where workplaces are (their GPS point) and where visits were made, for the hub console's
-- map: one row per record that has a point. Filled by the rebuild of the index rows that
-- follows the migrations.
CREATE TABLE place_index (
    record    INTEGER PRIMARY KEY REFERENCES records(rowid),
    kind      INTEGER NOT NULL,
    latitude  REAL NOT NULL,
    longitude REAL NOT NULL
);

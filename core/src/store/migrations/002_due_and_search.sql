-- Schema 2: the follow-up due list and accent-insensitive name search. Both are filled from the
-- documents by the migration's backfill.

CREATE TABLE due_index (
    record     INTEGER PRIMARY KEY REFERENCES records(rowid) ON DELETE CASCADE,
    kind       INTEGER NOT NULL,
    due_date   TEXT    NOT NULL,
    assignee   BLOB    NOT NULL,
    country    TEXT    NOT NULL,
    region     TEXT    NOT NULL,
    district   TEXT    NOT NULL,
    community  TEXT    NOT NULL
);
CREATE INDEX due_by_district ON due_index(district, due_date);
CREATE INDEX due_by_community ON due_index(community, due_date);
CREATE INDEX due_by_region ON due_index(region, due_date);
CREATE INDEX due_by_assignee ON due_index(assignee, due_date);
CREATE INDEX due_by_date ON due_index(due_date);

-- rowid = records.rowid. remove_diacritics 2 folds "Kouamé" to "kouame".
CREATE VIRTUAL TABLE name_search USING fts5(
    name,
    tokenize = 'unicode61 remove_diacritics 2'
);

-- Smaller index rows, for a phone that holds a region's records:
-- - Ids that index rows refer to (a visit's workplace and visitor, a follow-up's assignee, a
--   case's workplace) are kept once, in `referenced_ids`; the index tables hold their numbers,
--   as they hold area codes' (schema 13). An id took 16 bytes in a row and again in each index
--   over it, for a few thousand workplaces and users named by tens of thousands of rows.
-- - A visit's kind and status, and a case's sex, status and classification, are their stored
--   numbers (`domain::codes`), not their codes: a status took 9 bytes or more in a row and in
--   each of two area indexes.
-- - A follow-up's due day is its midnight in milliseconds, as every other day of an index row
--   (`derived::midnight_ms`), not its text.
-- Together, about a tenth of a phone's database. The tables are made again empty: the
-- backfill that follows every migration refills them from the documents.
CREATE TABLE referenced_ids (
    id   INTEGER PRIMARY KEY,
    uuid BLOB NOT NULL UNIQUE CHECK (length(uuid) = 16)
);

DROP TABLE visit_index;
CREATE TABLE visit_index (
    record       INTEGER PRIMARY KEY REFERENCES records(rowid) ON DELETE CASCADE,
    kind         INTEGER NOT NULL,
    workplace    INTEGER NOT NULL,
    visitor      INTEGER NOT NULL,
    started_ms   INTEGER NOT NULL,
    status       INTEGER NOT NULL,
    country      INTEGER NOT NULL,
    region       INTEGER NOT NULL,
    district     INTEGER NOT NULL,
    community    INTEGER NOT NULL,
    fl_mask      INTEGER NOT NULL DEFAULT 0,
    violation    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX visit_by_district ON visit_index(district, status, started_ms);
CREATE INDEX visit_by_community ON visit_index(community, status, started_ms);
CREATE INDEX visit_by_workplace ON visit_index(workplace, started_ms);
CREATE INDEX visit_by_visitor ON visit_index(visitor, started_ms);
-- 2 is `VisitStatus::Submitted`.
CREATE INDEX visit_review_queue ON visit_index ((fl_mask != 0) DESC, violation DESC, started_ms, record)
    WHERE status = 2;

DROP TABLE child_index;
CREATE TABLE child_index (
    record         INTEGER PRIMARY KEY REFERENCES records(rowid) ON DELETE CASCADE,
    case_code      TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    sex            INTEGER NOT NULL,
    age            INTEGER,
    status         INTEGER NOT NULL,
    classification INTEGER,
    identified_ms  INTEGER NOT NULL,
    country        INTEGER NOT NULL,
    region         INTEGER NOT NULL,
    district       INTEGER NOT NULL,
    community      INTEGER NOT NULL,
    birth_year     INTEGER,
    name_key       TEXT    NOT NULL DEFAULT '',
    workplace      INTEGER,
    merged         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX child_by_district ON child_index(district, status, classification);
CREATE INDEX child_by_community ON child_index(community, status, classification);
CREATE INDEX child_by_community_birth ON child_index(community, birth_year);

DROP TABLE due_index;
CREATE TABLE due_index (
    record    INTEGER PRIMARY KEY REFERENCES records(rowid) ON DELETE CASCADE,
    kind      INTEGER NOT NULL,
    due_ms    INTEGER NOT NULL,
    assignee  INTEGER NOT NULL,
    country   INTEGER NOT NULL,
    region    INTEGER NOT NULL,
    district  INTEGER NOT NULL,
    community INTEGER NOT NULL
);
CREATE INDEX due_by_district ON due_index(district, due_ms);
CREATE INDEX due_by_community ON due_index(community, due_ms);
CREATE INDEX due_by_assignee ON due_index(assignee, due_ms);
CREATE INDEX due_by_date ON due_index(due_ms);

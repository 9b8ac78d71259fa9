-- Area codes are kept once, in `area_codes`; the index tables hold their numbers. A code took
-- 2 to 12 bytes in each of four columns of six tables and again in the area indexes: about a
-- tenth of a phone's database. The tables are made again empty: the backfill that follows
-- every migration refills them from the documents.
CREATE TABLE area_codes (
    id   INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE
);

DROP TABLE scope_index;
CREATE TABLE scope_index (
    record    INTEGER PRIMARY KEY REFERENCES records(rowid) ON DELETE CASCADE,
    kind      INTEGER NOT NULL,
    country   INTEGER NOT NULL,
    region    INTEGER NOT NULL,
    district  INTEGER NOT NULL,
    community INTEGER NOT NULL
);
-- A record's area as codes, for the reads that give an area back whole.
CREATE VIEW scope_areas AS
SELECT s.record, s.kind,
       (SELECT code FROM area_codes WHERE id = s.country)   AS country,
       (SELECT code FROM area_codes WHERE id = s.region)    AS region,
       (SELECT code FROM area_codes WHERE id = s.district)  AS district,
       (SELECT code FROM area_codes WHERE id = s.community) AS community
FROM scope_index s;

DROP TABLE workplace_index;
CREATE TABLE workplace_index (
    record    INTEGER PRIMARY KEY REFERENCES records(rowid) ON DELETE CASCADE,
    name      TEXT    NOT NULL,
    sector    TEXT    NOT NULL,
    country   INTEGER NOT NULL,
    region    INTEGER NOT NULL,
    district  INTEGER NOT NULL,
    community INTEGER NOT NULL
);
CREATE INDEX workplace_by_district ON workplace_index(district, sector);
CREATE INDEX workplace_by_community ON workplace_index(community, sector);

DROP TABLE visit_index;
CREATE TABLE visit_index (
    record       INTEGER PRIMARY KEY REFERENCES records(rowid) ON DELETE CASCADE,
    kind         TEXT    NOT NULL,
    workplace_id BLOB    NOT NULL,
    visitor_id   BLOB    NOT NULL,
    started_ms   INTEGER NOT NULL,
    status       TEXT    NOT NULL,
    country      INTEGER NOT NULL,
    region       INTEGER NOT NULL,
    district     INTEGER NOT NULL,
    community    INTEGER NOT NULL,
    fl_mask      INTEGER NOT NULL DEFAULT 0,
    violation    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX visit_by_district ON visit_index(district, status, started_ms);
CREATE INDEX visit_by_community ON visit_index(community, status, started_ms);
CREATE INDEX visit_by_workplace ON visit_index(workplace_id, started_ms);
CREATE INDEX visit_by_visitor ON visit_index(visitor_id, started_ms);
CREATE INDEX visit_review_queue ON visit_index ((fl_mask != 0) DESC, violation DESC, started_ms, record)
    WHERE status = 'submitted';

DROP TABLE child_index;
CREATE TABLE child_index (
    record         INTEGER PRIMARY KEY REFERENCES records(rowid) ON DELETE CASCADE,
    case_code      TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    sex            TEXT    NOT NULL,
    age            INTEGER,
    status         TEXT    NOT NULL,
    classification TEXT,
    identified_ms  INTEGER NOT NULL,
    country        INTEGER NOT NULL,
    region         INTEGER NOT NULL,
    district       INTEGER NOT NULL,
    community      INTEGER NOT NULL,
    birth_year     INTEGER,
    name_key       TEXT    NOT NULL DEFAULT '',
    workplace_id   BLOB,
    merged         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX child_by_district ON child_index(district, status, classification);
CREATE INDEX child_by_community ON child_index(community, status, classification);
CREATE INDEX child_by_community_birth ON child_index(community, birth_year);

DROP TABLE due_index;
CREATE TABLE due_index (
    record    INTEGER PRIMARY KEY REFERENCES records(rowid) ON DELETE CASCADE,
    kind      INTEGER NOT NULL,
    due_date  TEXT    NOT NULL,
    assignee  BLOB    NOT NULL,
    country   INTEGER NOT NULL,
    region    INTEGER NOT NULL,
    district  INTEGER NOT NULL,
    community INTEGER NOT NULL
);
CREATE INDEX due_by_district ON due_index(district, due_date);
CREATE INDEX due_by_community ON due_index(community, due_date);
CREATE INDEX due_by_assignee ON due_index(assignee, due_date);
CREATE INDEX due_by_date ON due_index(due_date);

DROP TABLE alert_index;
CREATE TABLE alert_index (
    record    INTEGER PRIMARY KEY REFERENCES records(rowid) ON DELETE CASCADE,
    kind      INTEGER NOT NULL,
    severity  INTEGER NOT NULL,
    at_ms     INTEGER NOT NULL,
    country   INTEGER NOT NULL,
    region    INTEGER NOT NULL,
    district  INTEGER NOT NULL,
    community INTEGER NOT NULL
);
CREATE INDEX alert_by_severity ON alert_index(severity, at_ms);
CREATE INDEX alert_by_district ON alert_index(district, severity, at_ms);
CREATE INDEX alert_by_community ON alert_index(community, severity, at_ms);

-- A device now keeps the heads the hub holds of a record only while the record waits in the
-- outbox (`store/sync_state.rs`): a record out of it is held by the hub exactly as by the
-- device, which is what every copy kept for such a record says. A hub keeps none.
DELETE FROM sync_hub_heads WHERE record_id NOT IN (SELECT record_id FROM sync_outbox);

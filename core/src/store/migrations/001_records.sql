-- Vigie store, schema 1: documents, their change log, and the index tables that answer the
-- field's questions without loading documents. Never edit a migration that has shipped.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

-- One Automerge document per record. `heads` is the concatenation of its 32-byte head hashes.
CREATE TABLE records (
    rowid      INTEGER PRIMARY KEY,
    id         BLOB    NOT NULL UNIQUE CHECK (length(id) = 16),
    kind       INTEGER NOT NULL,
    doc        BLOB    NOT NULL,
    heads      BLOB    NOT NULL,
    last_seq   INTEGER NOT NULL
);

-- Every write appends here in the same transaction as the document and its index rows.
-- `origin` 0 = edited on this device, 1 = received from another device.
CREATE TABLE change_log (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id  BLOB    NOT NULL,
    kind       INTEGER NOT NULL,
    changes    BLOB    NOT NULL,
    user_id    BLOB,
    device_id  BLOB,
    origin     INTEGER NOT NULL,
    at_ms      INTEGER NOT NULL
);
CREATE INDEX change_log_by_record ON change_log(record_id, seq);

CREATE TABLE workplace_index (
    record     INTEGER PRIMARY KEY REFERENCES records(rowid) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    sector     TEXT NOT NULL,
    country    TEXT NOT NULL,
    region     TEXT NOT NULL,
    district   TEXT NOT NULL,
    community  TEXT NOT NULL
);
CREATE INDEX workplace_by_district ON workplace_index(district, sector);
CREATE INDEX workplace_by_community ON workplace_index(community, sector);

CREATE TABLE visit_index (
    record       INTEGER PRIMARY KEY REFERENCES records(rowid) ON DELETE CASCADE,
    kind         TEXT    NOT NULL,
    workplace_id BLOB    NOT NULL,
    visitor_id   BLOB    NOT NULL,
    started_ms   INTEGER NOT NULL,
    status       TEXT    NOT NULL,
    country      TEXT    NOT NULL,
    region       TEXT    NOT NULL,
    district     TEXT    NOT NULL,
    community    TEXT    NOT NULL
);
CREATE INDEX visit_by_district ON visit_index(district, status, started_ms);
CREATE INDEX visit_by_community ON visit_index(community, status, started_ms);
CREATE INDEX visit_by_region ON visit_index(region, status, started_ms);
CREATE INDEX visit_by_workplace ON visit_index(workplace_id, started_ms);
CREATE INDEX visit_by_visitor ON visit_index(visitor_id, started_ms);
CREATE INDEX visit_by_status ON visit_index(status, started_ms);
CREATE INDEX visit_by_start ON visit_index(started_ms);

CREATE TABLE child_index (
    record         INTEGER PRIMARY KEY REFERENCES records(rowid) ON DELETE CASCADE,
    case_code      TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    sex            TEXT    NOT NULL,
    age            INTEGER,
    status         TEXT    NOT NULL,
    classification TEXT,
    identified_ms  INTEGER NOT NULL,
    country        TEXT    NOT NULL,
    region         TEXT    NOT NULL,
    district       TEXT    NOT NULL,
    community      TEXT    NOT NULL
);
CREATE INDEX child_by_district ON child_index(district, status, classification);
CREATE INDEX child_by_community ON child_index(community, status, classification);
CREATE INDEX child_by_region ON child_index(region, status, classification);
CREATE INDEX child_by_status ON child_index(status, classification);

CREATE TABLE user_index (
    record INTEGER PRIMARY KEY REFERENCES records(rowid) ON DELETE CASCADE,
    name   TEXT NOT NULL,
    role   TEXT NOT NULL
);

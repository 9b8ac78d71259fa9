-- Schema 3: what sync needs.

-- Records in the order they last changed: a hub answers "what changed since" from here.
CREATE INDEX records_by_last_seq ON records(last_seq);

-- The area every record belongs to, for partial replication (users have none).
CREATE TABLE scope_index (
    record    INTEGER PRIMARY KEY REFERENCES records(rowid) ON DELETE CASCADE,
    kind      INTEGER NOT NULL,
    country   TEXT    NOT NULL,
    region    TEXT    NOT NULL,
    district  TEXT    NOT NULL,
    community TEXT    NOT NULL
);
CREATE INDEX scope_by_community ON scope_index(community);
CREATE INDEX scope_by_district ON scope_index(district);
CREATE INDEX scope_by_region ON scope_index(region);

-- A device's view of its hub. Records with changes the hub may lack wait in the outbox; the
-- heads the hub is known to hold let a push send only what it lacks.
CREATE TABLE sync_outbox (
    record_id BLOB PRIMARY KEY,
    queued_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE sync_hub_heads (
    record_id BLOB PRIMARY KEY,
    heads     BLOB NOT NULL
) WITHOUT ROWID;
-- Records whose received changes could not all be applied: the next request asks for them whole.
CREATE TABLE sync_refetch (
    record_id BLOB PRIMARY KEY
) WITHOUT ROWID;

-- Erasure: the ids of records erased for good. A tombstone holds no content: it only stops an
-- old copy (a device that was offline, a peer, a bundle) from bringing the record back. `seq` is
-- its place in the hub's change order, so that devices learn of it through their cursor.
CREATE TABLE erased (
    record_id BLOB PRIMARY KEY,
    seq       INTEGER,
    at_ms     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX erased_by_seq ON erased (seq);

-- Changes a device sent to records that are no longer its user's to change (the user lost the
-- area): kept for a supervisor to accept or reject, never dropped.
CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY,
    record_id   BLOB NOT NULL,
    device_id   BLOB NOT NULL,
    user_id     BLOB NOT NULL,
    changes     BLOB NOT NULL,
    received_ms INTEGER NOT NULL
);
CREATE INDEX quarantine_by_record ON quarantine (record_id);

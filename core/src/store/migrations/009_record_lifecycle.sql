-- Schema 9: how records come and go between the hub and devices.

-- Erased content. On the hub, the hash of every change of an erased record: a push carrying
-- one is refused, whatever its record id. On a device, the roots of erased records' histories
-- (changes with no dependencies, from the hub's tombstones and from its own copies): every
-- change of a record descends from a root, so no pull, peer or bundle document can bring any
-- of the content back without one.
CREATE TABLE erased_changes (
    hash      BLOB PRIMARY KEY,
    record_id BLOB NOT NULL,
    root      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX erased_changes_by_record ON erased_changes (record_id);

-- The hub: where a record was filed until it moved or was erased, at that change's place in
-- the change order. A device whose scope covered the old area learns that the record left
-- it (or was erased) when its walk through the change order reaches that place.
CREATE TABLE area_history (
    seq       INTEGER NOT NULL,
    record_id BLOB    NOT NULL,
    kind      INTEGER NOT NULL,
    country   TEXT    NOT NULL,
    region    TEXT    NOT NULL,
    district  TEXT    NOT NULL,
    community TEXT    NOT NULL
);
CREATE INDEX area_history_by_seq ON area_history (seq);

-- The hub: each device's pushes are numbered, one number per request that stored any; a change
-- log entry from a device keeps its number. A device says which number it has applied the
-- answer to, so the hub knows which of the device's own changes the device holds (a store
-- restored from an older copy lacks the later ones).
CREATE TABLE hub_pushes (
    device BLOB PRIMARY KEY,
    count  INTEGER NOT NULL
) WITHOUT ROWID;
ALTER TABLE change_log ADD COLUMN push INTEGER;

-- A device: records the hub said left this device's scope (or that a new scope does not
-- cover), kept until the changes waiting for the hub in the outbox are pushed.
CREATE TABLE sync_left (
    record_id BLOB PRIMARY KEY
) WITHOUT ROWID;

-- How records come and go (the embedded store's migration 009): the hashes of erased
-- records' changes, where records were filed until they moved or were erased, and each
-- device's numbered pushes.

CREATE TABLE erased_changes (
    hash      BYTEA PRIMARY KEY,
    record_id UUID NOT NULL,
    root      BOOLEAN NOT NULL
);
CREATE INDEX erased_changes_by_record ON erased_changes (record_id);
CREATE TABLE area_history (
    seq       BIGINT NOT NULL,
    record_id UUID NOT NULL,
    kind      SMALLINT NOT NULL,
    country   TEXT NOT NULL,
    region    TEXT NOT NULL,
    district  TEXT NOT NULL,
    community TEXT NOT NULL
);
CREATE INDEX area_history_by_seq ON area_history (seq);
CREATE TABLE hub_pushes (
    device UUID PRIMARY KEY,
    count  BIGINT NOT NULL
);
ALTER TABLE change_log ADD COLUMN push BIGINT;

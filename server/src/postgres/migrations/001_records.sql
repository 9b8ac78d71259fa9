-- The hub's records, their change log in change order, and enrolled devices.

CREATE TABLE vigie_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE SEQUENCE change_seq;
CREATE TABLE records (
    id        UUID PRIMARY KEY,
    kind      SMALLINT NOT NULL,
    doc       BYTEA NOT NULL,
    heads     BYTEA NOT NULL,
    last_seq  BIGINT NOT NULL,
    first_seq BIGINT NOT NULL,
    creator   UUID,
    country   TEXT,
    region    TEXT,
    district  TEXT,
    community TEXT
);
CREATE INDEX records_by_last_seq ON records (last_seq);
CREATE TABLE change_log (
    seq       BIGINT PRIMARY KEY,
    record_id UUID NOT NULL,
    changes   BYTEA NOT NULL,
    device_id UUID,
    at_ms     BIGINT NOT NULL
);
CREATE INDEX change_log_by_record ON change_log (record_id, seq);
CREATE TABLE devices (
    device      UUID PRIMARY KEY,
    user_id     UUID NOT NULL,
    secret_hash BYTEA NOT NULL,
    enrolled_ms BIGINT NOT NULL,
    revoked_ms  BIGINT
);

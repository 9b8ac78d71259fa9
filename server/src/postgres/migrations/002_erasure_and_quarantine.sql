-- Erasure tombstones and quarantined changes (the embedded store's migration 008).

CREATE TABLE erased (
    record_id UUID PRIMARY KEY,
    seq       BIGINT NOT NULL,
    at_ms     BIGINT NOT NULL
);
CREATE INDEX erased_by_seq ON erased (seq);
CREATE TABLE quarantine (
    id          BIGSERIAL PRIMARY KEY,
    record_id   UUID NOT NULL,
    device_id   UUID NOT NULL,
    user_id     UUID NOT NULL,
    changes     BYTEA NOT NULL,
    received_ms BIGINT NOT NULL
);
CREATE INDEX quarantine_by_record ON quarantine (record_id);

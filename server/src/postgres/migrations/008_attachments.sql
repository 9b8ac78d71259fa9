-- Attachments (the embedded store's migration 011). Each attachment's bytes are kept as
-- segments sealed under a key of its own (the sealed file format's segments, one row each),
-- so that every hub process serves them and a deleted row takes its key with it.
CREATE TABLE attachments (
    id        UUID PRIMARY KEY,
    record_id UUID    NOT NULL,
    file_key  BYTEA   NOT NULL,
    prefix    BYTEA   NOT NULL,
    sha256    BYTEA   NOT NULL,
    size      BIGINT  NOT NULL,
    -- Every byte arrived and matched the hash.
    complete  BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX attachments_by_record ON attachments (record_id);
CREATE TABLE attachment_segments (
    attachment_id UUID    NOT NULL REFERENCES attachments (id) ON DELETE CASCADE,
    idx           INTEGER NOT NULL,
    sealed        BYTEA   NOT NULL,
    PRIMARY KEY (attachment_id, idx)
);

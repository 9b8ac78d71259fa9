-- Device identity (issue 13): the hub's signing key, one for every hub process sharing this
-- database (created by the first to start), and the certificate last issued to each device.
-- The signing key is sealed by the hub (`postgres/seal.rs`, like records' documents).

CREATE TABLE hub_identity (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    signing_seed BYTEA   NOT NULL
);

ALTER TABLE devices ADD COLUMN certificate BYTEA;

-- The hashes of changes the hub refused from the device that made them: a relay holding them
-- is told so (`AuthorRevoked`) rather than waiting for their author for ever. At most
-- `MAX_REFUSED_CHANGES_KEPT` a device, the latest.
CREATE TABLE refused_changes (
    hash BYTEA PRIMARY KEY,
    device UUID NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX refused_changes_by_device ON refused_changes (device, at_ms);

-- The hashes of changes a supervisor rejected in review: never taken, so a relay holding them
-- is told so (`AuthorRevoked`) rather than waiting for them for ever.
CREATE TABLE given_up_changes (
    hash BYTEA PRIMARY KEY
);

-- The actor of the store each device last synced from: changes of its other actors that the
-- hub lacks will never come, and a relay holding them is told so (`AuthorRevoked`).
CREATE TABLE device_actors (
    device UUID PRIMARY KEY,
    actor  BYTEA NOT NULL
);

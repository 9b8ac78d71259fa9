-- Schema 23: the hub keeps the actor of the store each device last synced from. Changes of
-- the device's other actors that the hub lacks will never come (a phone reset before it
-- synced, its token reissued; an actor forged in its name): a record a relay holds with them
-- is answered `AuthorRevoked`, rather than waiting for them for ever. Devices leave it empty.
CREATE TABLE device_actors (
    device BLOB PRIMARY KEY,
    actor  BLOB NOT NULL
) WITHOUT ROWID;

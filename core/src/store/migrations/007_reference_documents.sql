-- Schema 7: reference data published by the hub is stored as records of kind 5. The store
-- reloads it whenever those few documents change, which it checks before every write: a partial
-- index finds them without scanning every record.
CREATE INDEX records_reference ON records(last_seq) WHERE kind = 5;

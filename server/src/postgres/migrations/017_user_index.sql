-- The hub's users are listed on every page that names people (users, devices, the audit log,
-- a record's history): among a region's 150,000 records, a partial index finds the few dozen.

CREATE INDEX records_users ON records (id) WHERE kind = 4;

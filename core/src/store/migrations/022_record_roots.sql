-- Schema 22: the hub keeps where each record's history starts, its root change, so that a
-- document pushed under another id (a copy of a record, which its erasure would leave) is
-- refused: every record's history has one root, its own. Devices leave it empty; the hub's
-- backfill fills it from the documents.
ALTER TABLE records ADD COLUMN root BLOB;
CREATE INDEX records_by_root ON records (root) WHERE root IS NOT NULL;

-- Where each record's history starts, its root change: a document pushed under another id (a
-- copy of a record, which its erasure would leave) is refused. The hub fills it in for the
-- records stored before (`postgres::fill_roots`, in the same transaction).
ALTER TABLE records ADD COLUMN root BYTEA;
CREATE INDEX records_by_root ON records (root) WHERE root IS NOT NULL;

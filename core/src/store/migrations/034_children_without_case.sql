-- Schema 34: a visit's row keeps how many children under 15 it counted at work (`under_15`,
-- `derived::children_under_15`), and `visit_named` the cases it names: the review queue ranks
-- a visit whose count passes the children its cases register (those it names, and those
-- opened on it since) above paperwork. Written from the documents by the backfill that
-- follows this migration (`REDERIVED_AT`, visits only).
ALTER TABLE visit_index ADD COLUMN under_15 INTEGER NOT NULL DEFAULT 0;
-- The case's id itself, not a number of `referenced_ids`: most cases a visit names are known
-- by no other row, and a number each cost a phone 10 bytes a record.
CREATE TABLE visit_named (
    record INTEGER NOT NULL REFERENCES records(rowid) ON DELETE CASCADE,
    child  BLOB    NOT NULL,
    PRIMARY KEY (record, child)
) WITHOUT ROWID;

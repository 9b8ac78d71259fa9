-- Schema 34: a visit's row keeps how many children under 15 it counted at work (`under_15`,
-- `derived::children_under_15`) and how many cases it names (`named`): the review queue ranks a
-- visit whose count passes the children its cases register (those it names, and those opened
-- on it since) above paperwork. Written from the documents by the backfill that follows this
-- migration (`REDERIVED_AT`, visits only).
ALTER TABLE visit_index ADD COLUMN under_15 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE visit_index ADD COLUMN named INTEGER NOT NULL DEFAULT 0;

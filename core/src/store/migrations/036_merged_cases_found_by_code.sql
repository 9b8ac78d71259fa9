-- Schema 36: a merged duplicate's row names the case it was merged into (`merged_into`, a
-- number of `referenced_ids`), so that the code of a registration merged into another finds
-- the case kept: a monitor holding the paper form of the first registration types its code.
-- Files of schema 35 have their cases' rows written again from the documents by the backfill
-- that follows this migration (`REDERIVED_AT`, cases only).
ALTER TABLE child_index ADD COLUMN merged_into INTEGER;

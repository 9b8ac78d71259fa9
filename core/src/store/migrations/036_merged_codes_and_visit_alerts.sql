-- Schema 36: a merged duplicate's row names the case it was merged into (`merged_into`, a
-- number of `referenced_ids`), so that the code of a registration merged into another finds
-- the case kept: a monitor holding the paper form of the first registration types its code.
-- The rules changed since schema 35 shipped, too: a verified case alerts by what follow-ups
-- saw from its verification day; a visit's due day in conflict; a child whose work is
-- described works whatever hours were noted; a visit with forced-labour indicators alerts as
-- one where children work once a case names it as the visit its child was identified on
-- (`alert_index.with_cases`, beside `without_cases`, what it raises alone). Files of schema 35 have every record's rows
-- written again from the documents by the backfill that follows this migration
-- (`REDERIVED_AT`); and the version tells an older `vigie` or app that these files are newer
-- than it, so that a leftover older binary cannot take what this one refuses.
ALTER TABLE child_index ADD COLUMN merged_into INTEGER;
ALTER TABLE alert_index ADD COLUMN without_cases INTEGER;
ALTER TABLE alert_index ADD COLUMN with_cases INTEGER;

-- Schema 31: index rows derived by rules changed in this version, written again from the
-- documents by the backfill that follows this migration (`REDERIVED_AT`):
-- - a case whose deciding fields hold values in conflict is classified by the most severe of
--   them (its classification, alert and indicators rows);
-- - a follow-up made up to 14 days before a scheduled one answers it (due and overdue rows);
-- - a case's alert is dated by the follow-up that found the child still working (alert rows);
-- - a child of unknown age observed not working is not classified child labour;
-- - indicators count the furthest step of the cycle a case reached (`reached`, a case status's
--   number): a child reopened after being withdrawn stays counted as referred and withdrawn.
ALTER TABLE child_index ADD COLUMN reached INTEGER NOT NULL DEFAULT 0;

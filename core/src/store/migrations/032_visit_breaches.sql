-- Schema 32: visits' index rows derived by rules changed in this version, written again from
-- the documents by the backfill that follows this migration (`REDERIVED_AT`, visits only):
-- - a checklist item is breached by the answer its wording says (`ChecklistItem::breach`):
--   "Children below the minimum age working" by a "yes" (it was read as breached by a "no",
--   like "Workers keep their identity papers"): the `violation` column;
-- - the ILO indicators answered as found on the `forced-labour` checklist are indicators found
--   (`fl_mask`, the visit's alert);
-- - children whose cases the visit opened are children at work for its alert, and a single
--   weak indicator where children work is "forced labour likely", not a worst form.
SELECT 1;

-- Schema 26: a lone letter of a name is also indexed joined to the word after it
-- (`derived::search_terms`), so "nguessan" typed run together finds a child registered as
-- "N Guessan", as it found "N'Guessan"; and a character that shows nothing (a zero-width space
-- or a soft hyphen pasted inside a name) no longer splits the word (`derived::fold_name`). The
-- search terms are made again: the backfill that follows every migration fills the emptied
-- table from the documents, and the folded names of the duplicate check with them.
DELETE FROM name_search;

-- A case names the visit it was identified on (`identified_on_visit`): indexed, so that a
-- visit's page counts its children as the exports do, without reading every case.
ALTER TABLE child_index ADD COLUMN visit INTEGER;
CREATE INDEX child_by_visit ON child_index(visit) WHERE visit IS NOT NULL;

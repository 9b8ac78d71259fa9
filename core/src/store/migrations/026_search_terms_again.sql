-- Schema 26: a lone letter of a name is also indexed joined to the word after it
-- (`derived::search_terms`), so "nguessan" typed run together finds a child registered as
-- "N Guessan", as it found "N'Guessan". The search terms are made again: the backfill that
-- follows every migration fills the emptied table from the documents.
DELETE FROM name_search;

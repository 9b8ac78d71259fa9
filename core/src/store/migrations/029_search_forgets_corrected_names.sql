-- Schema 29: a name corrected (a child recorded as "Brouhahaxx", typed again as "Brou") leaves
-- the name search's index at once. FTS5 otherwise keeps a replaced row's terms in its segments
-- until a merge, where reading the store's file with its key finds the wrong name; its
-- 'secure-delete' option removes them with the row (erasures rewrite the whole index besides).
-- The index is merged once here, so that names corrected before this schema go too.
INSERT INTO name_search (name_search, rank) VALUES ('secure-delete', 1);
INSERT INTO name_search (name_search) VALUES ('optimize');

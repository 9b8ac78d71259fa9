-- Schema 17: names are found by the words duplicate detection compares (`derived::search_terms`:
-- folded like `fold_name`, ɔ as o, œ as oe, and a name joined by an apostrophe or a hyphen also
-- as one word), so "Nguessan" finds "N'Guessan". The shown name is kept beside its terms,
-- unindexed. The backfill that follows every migration fills the table from the documents.
DROP TABLE name_search;
CREATE VIRTUAL TABLE name_search USING fts5(
    name UNINDEXED,
    terms,
    tokenize = 'unicode61 remove_diacritics 2'
);

-- Schema 18: a name is folded the same however its accents were typed (`derived::fold_name`:
-- "é" as one character or as "e" and a combining mark, ligatures as their letters); names
-- typed with separate marks were indexed as broken words. The search terms are made again: the
-- backfill that follows every migration fills the emptied table from the documents.
DELETE FROM name_search;

-- Schema 33: names are folded for search and comparison with the letters of West African
-- alphabets that stand for a letter of a French keyboard (`derived::fold_name`: ŋ and ɲ as n
-- and ny, ɓ as b, ɗ and ɖ as d, ƙ as k, ƴ as y, ƒ as f, ɣ as g, ʋ as v, ɩ as i, ə as e):
-- "ngom" finds "Moussa Ŋgom". Only the records whose names hold one of them are indexed again
-- (`REDERIVED_AT`, `Rederive::NamesWith`): their search terms and the folded name the
-- duplicate check compares.
SELECT 1;

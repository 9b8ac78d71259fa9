-- Schema 28: a case's follow-up leaves the due and overdue lists on the child's 18th birthday,
-- as its alert does (schema 16): a follow-up missed at 17 is no child's follow-up once the
-- person is 18, and the lists go on showing it with no write to take it out. Each case's due
-- row carries that day (NULL when the age is unknown, and for visits); the backfill that
-- follows every migration fills it from the documents.
ALTER TABLE due_index ADD COLUMN adult_ms INTEGER;

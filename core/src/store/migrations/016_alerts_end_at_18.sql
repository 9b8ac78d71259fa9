-- Schema 16: a case's alert ends on the child's 18th birthday (what a person of 18 does is not
-- child labour), a day the calendar reaches without any write. Each case's alert row carries
-- that day (NULL when the age is unknown, and for visits); the alert lists and the map leave out
-- rows past it. The backfill that follows every migration fills the column from the documents.
ALTER TABLE alert_index ADD COLUMN adult_ms INTEGER;

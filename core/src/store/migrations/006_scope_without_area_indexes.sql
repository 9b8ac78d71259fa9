-- Schema 6: the hub finds what changed by walking records in change order and reads a record's
-- scope row by its rowid; no query looks scope rows up by area any more (peer and bundle
-- filters scan, and are rare). Three indexes of every record's area codes go.
DROP INDEX scope_by_community;
DROP INDEX scope_by_district;
DROP INDEX scope_by_region;

-- Who made a change travels in the change itself (its message); the log's copy was never read.
ALTER TABLE change_log DROP COLUMN user_id;

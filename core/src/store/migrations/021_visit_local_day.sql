-- Schema 21: a visit is counted in a period by its own day, the one its phone's clock gave it
-- (`started_at` with its offset), as a case is by the day it was identified and as exports
-- show it: by the UTC day, a visit at 23:30 on 28 February in a country at UTC-3 fell in
-- March. The offset is kept beside the instant; the backfill that follows every migration
-- fills it from the documents.
ALTER TABLE visit_index ADD COLUMN offset_ms INTEGER NOT NULL DEFAULT 0;

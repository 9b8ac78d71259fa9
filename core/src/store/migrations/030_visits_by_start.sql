-- Schema 30: the visits list, newest first, without a filter (an app's "Visits" screen, a
-- supervisor's whole region) reads this index backwards; without it each page sorted every
-- visit of the store (0.6 s a page for a region's 100,000 on this machine).
CREATE INDEX visit_by_started ON visit_index(started_ms, record);

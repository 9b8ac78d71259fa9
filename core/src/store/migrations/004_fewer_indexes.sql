-- Schema 4: drop indexes no query uses. Every index costs bytes per record and time per write
-- on a phone; region-wide and status-only lists are served by the remaining indexes or a scan.
DROP INDEX visit_by_region;
DROP INDEX visit_by_status;
DROP INDEX visit_by_start;
DROP INDEX child_by_region;
DROP INDEX child_by_status;
DROP INDEX due_by_region;

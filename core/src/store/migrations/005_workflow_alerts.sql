-- Schema 5: urgent alerts, duplicate detection, indicators and urgent-first sync. Every new
-- column and row is filled from the documents by the migration's backfill.

-- Duplicates: the birth year (from the date of birth or the estimated age), the name folded
-- for comparison (lower case, no accents); indicators: the workplace (for its sector); merged
-- duplicates are left out of lists and counts.
ALTER TABLE child_index ADD COLUMN birth_year INTEGER;
ALTER TABLE child_index ADD COLUMN name_key TEXT NOT NULL DEFAULT '';
ALTER TABLE child_index ADD COLUMN workplace_id BLOB;
ALTER TABLE child_index ADD COLUMN merged INTEGER NOT NULL DEFAULT 0;
CREATE INDEX child_by_community_birth ON child_index(community, birth_year);

-- Indicators: forced-labour indicators found (bit i = ForcedLabourIndicator::ALL[i]) and
-- whether the visit found a violation (a checklist answer "no", or a forced-labour indicator).
ALTER TABLE visit_index ADD COLUMN fl_mask INTEGER NOT NULL DEFAULT 0;
ALTER TABLE visit_index ADD COLUMN violation INTEGER NOT NULL DEFAULT 0;

-- Urgent alerts: severity 3 = worst form suspected, 2 = hazardous child labour (open cases),
-- 1 = forced-labour indicators found on a visit.
CREATE TABLE alert_index (
    record    INTEGER PRIMARY KEY REFERENCES records(rowid) ON DELETE CASCADE,
    kind      INTEGER NOT NULL,
    severity  INTEGER NOT NULL,
    at_ms     INTEGER NOT NULL,
    country   TEXT    NOT NULL,
    region    TEXT    NOT NULL,
    district  TEXT    NOT NULL,
    community TEXT    NOT NULL
);
CREATE INDEX alert_by_severity ON alert_index(severity, at_ms);
CREATE INDEX alert_by_district ON alert_index(district, severity, at_ms);
CREATE INDEX alert_by_community ON alert_index(community, severity, at_ms);

-- Urgent records go first in the device's outbox (the same severity as alerts).
ALTER TABLE sync_outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;

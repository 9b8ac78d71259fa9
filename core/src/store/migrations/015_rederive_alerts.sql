-- Schema 15: the classification and alert rules changed (night work and hazards are work
-- whatever the hours; light work out of school is child labour; the exception from 16 never
-- covers R190's hazards, long hours or night work; forced-labour indicators rank by strength
-- and by the children in the workforce; a child still working at the latest follow-up raises an
-- alert), and alert severities were renumbered (`AlertSeverity`). The backfill that follows
-- every migration rebuilds every index row, alerts and classifications included, from the
-- documents with today's rules. The outbox's and attachments' priorities, copies of the old
-- severities, take the new numbers here (hazardous 2 -> 4, worst form 3 -> 5); each record
-- takes its new urgency at its next save.
UPDATE sync_outbox SET priority = CASE priority WHEN 2 THEN 4 WHEN 3 THEN 5 ELSE priority END
    WHERE priority IN (2, 3);
UPDATE attachments SET priority = CASE priority WHEN 2 THEN 4 WHEN 3 THEN 5 ELSE priority END
    WHERE priority IN (2, 3);

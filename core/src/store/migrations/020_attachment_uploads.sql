-- Schema 20: which attachments' bytes were captured on this device and go to the hub
-- (`upload`), whatever their state. A failed upload stays this device's to send (retried when
-- the hub's limits allow it), and one whose record left the device (out of scope, kept for
-- review) stays until the hub holds its bytes: it may be the only copy.
ALTER TABLE attachments ADD COLUMN upload INTEGER NOT NULL DEFAULT 0;
-- Pending (0) and uploaded (1) rows are uploads; a failed one is, when it failed on a limit
-- per file or per record (downloads never do).
UPDATE attachments SET upload = 1
 WHERE state IN (0, 1)
    OR (state = 5 AND failure IN ('larger than the hub accepts per file',
                                  'over the hub''s limit per record'));

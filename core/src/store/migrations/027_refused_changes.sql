-- Schema 27: the hub keeps the hashes of changes it refused from the device that made them
-- (a step its user's role may not take, a rule broken, outside its areas). A colleague's phone
-- that received them by a peer or a bundle waited for their author for ever, its own edits
-- held back with them: it is answered `AuthorRevoked`, and rebuilds the record on the hub's
-- version with its own edits written again. At most `MAX_REFUSED_CHANGES_KEPT` a device, the
-- latest. Devices leave it empty.
CREATE TABLE refused_changes (
    hash BLOB PRIMARY KEY,
    device BLOB NOT NULL,
    at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX refused_changes_by_device ON refused_changes (device, at_ms);

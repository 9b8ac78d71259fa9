-- Schema 25: the version of a record the hub was last known to hold, kept when the hub answers
-- that it lacks the history a push built on (`MissingHistory`: the next push sends the record
-- whole, so `sync_hub_heads` forgets it). The hub answers so for every record outside the
-- device's scope; should it then refuse changes of another device the record holds, which
-- will never come (`AuthorRevoked`), the device rebuilds the record on this version with its
-- own edits written again, which go to review: the hub sends no version outside the scope.
CREATE TABLE sync_hub_heads_kept (
    record_id BLOB PRIMARY KEY,
    heads     BLOB NOT NULL
) WITHOUT ROWID;

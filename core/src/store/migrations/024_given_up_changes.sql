-- Schema 24: the hub keeps the hashes of changes it will never take because a supervisor
-- rejected them in review (kept for review when their author lost the record's area). Their
-- author's device let the record go when they were kept; a colleague's phone that received
-- them by a peer or a bundle would otherwise wait for them for ever, and pass the child's
-- record on: it is answered `AuthorRevoked`. Devices leave it empty.
CREATE TABLE given_up_changes (
    hash BLOB PRIMARY KEY
) WITHOUT ROWID;

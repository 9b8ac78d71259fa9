-- Schema 19: the records whose changes the hub refused, until it takes them. The phone keeps
-- them (nothing typed is lost) but offers them to no peer: a colleague's phone could never send
-- changes that are not its user's, and would hold the record pending for good.
CREATE TABLE IF NOT EXISTS sync_refused (
    record_id BLOB PRIMARY KEY NOT NULL
) WITHOUT ROWID;

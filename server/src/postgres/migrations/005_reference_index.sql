-- Reference documents are read at every request to know whether they changed (the embedded
-- store's migration 007): a partial index keeps that cheap.

CREATE INDEX records_reference ON records (last_seq) WHERE kind = 5;

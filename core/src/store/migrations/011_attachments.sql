-- Schema 11 (attachments). The bytes of each attachment this store holds, or is receiving,
-- live in a sealed file beside the database (`<db>.attachments/<id>`), under the key kept
-- here: deleting the row destroys the key (secure_delete zeroes it), whatever became of the
-- file. The manifest (what a record's attachments are) lives in the record's document.
CREATE TABLE attachments (
    id        BLOB PRIMARY KEY,
    record_id BLOB    NOT NULL,
    file_key  BLOB    NOT NULL,
    sha256    BLOB    NOT NULL,
    size      INTEGER NOT NULL,
    -- AttachmentState's stored code.
    state     INTEGER NOT NULL,
    -- Why the last transfer failed for good (a fixed phrase, never content).
    failure   TEXT,
    -- On a device: the bytes the hub said it holds of an upload. On the hub: whether the
    -- upload arrived whole and verified (1) or is still being received (0).
    confirmed INTEGER NOT NULL DEFAULT 0,
    -- The record's alert severity when queued: urgent alerts' attachments travel first.
    priority  INTEGER NOT NULL DEFAULT 0,
    -- The app asked for it (download policy "on demand").
    requested INTEGER NOT NULL DEFAULT 0,
    -- A device: an upload was under way when its session stopped.
    in_flight INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX attachments_by_record ON attachments (record_id);
CREATE INDEX attachments_by_state ON attachments (state, priority);

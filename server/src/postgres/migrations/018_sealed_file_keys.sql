-- Each attachment's key is sealed under the hub's key (`postgres/seal.rs`, `FileKey`): schema
-- 17 kept it in clear beside the segments it opens, so that a dump, a backup or anyone who
-- could read the database held every photo and document the phones sent. The hub seals the
-- keys there are (`seal_file_keys`); a key in clear is refused afterwards (a sealed key is 73
-- bytes: format, nonce, 32 bytes, tag).

-- vigie: seal file keys

ALTER TABLE attachments
    ADD CONSTRAINT attachments_file_key_sealed CHECK (octet_length(file_key) = 73);

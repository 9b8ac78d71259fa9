-- A device's identity (issue 13). Its secret keys, the hub key it pinned, its certificate and
-- the hub's revocation list are values of `meta` (this file is SQLCipher-encrypted); here the
-- directory of other devices' certificates the hub delivers, for sealing bundles to them.
CREATE TABLE peer_directory (
    device      BLOB PRIMARY KEY,
    certificate BLOB NOT NULL
) WITHOUT ROWID;

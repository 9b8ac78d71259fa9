-- Encryption at rest (`postgres/seal.rs`): a record's document, its area and quarantined
-- changes are sealed by the hub (AEAD under a key derived from the hub's key); what scope
-- queries match, a record's area code at each level, becomes a keyed hash. The database keeps
-- no name, note or place in clear.
--
-- In two parts. The first adds the sealed columns; the hub then seals every existing row
-- (`postgres::reseal`, in the same transaction), and the second drops the plain columns.

ALTER TABLE records
    ADD COLUMN area        BYTEA,
    ADD COLUMN country_h   BYTEA,
    ADD COLUMN region_h    BYTEA,
    ADD COLUMN district_h  BYTEA,
    ADD COLUMN community_h BYTEA;
ALTER TABLE area_history ADD COLUMN area BYTEA;

-- vigie: reseal

ALTER TABLE records
    DROP COLUMN country,
    DROP COLUMN region,
    DROP COLUMN district,
    DROP COLUMN community;
ALTER TABLE area_history
    DROP COLUMN country,
    DROP COLUMN region,
    DROP COLUMN district,
    DROP COLUMN community;
ALTER TABLE area_history ALTER COLUMN area SET NOT NULL;

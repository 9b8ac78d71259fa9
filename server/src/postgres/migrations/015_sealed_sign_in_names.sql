-- The console's sign-in names leave the database in clear (`postgres/seal.rs`): an account is
-- found by the keyed hash of its name (`login_h`) and its name is sealed under its user's id
-- (`login_sealed`); the sign-in throttle's counts are kept under keyed hashes of what they
-- count (a name typed in the sign-in field, an address). The hub fills the new columns and
-- hashes the counts' keys (`seal_sign_in_names`) before the plain column goes.

ALTER TABLE console_accounts
    ADD COLUMN login_h      BYTEA,
    ADD COLUMN login_sealed BYTEA;

-- vigie: seal sign-in names

ALTER TABLE console_accounts DROP COLUMN login;
ALTER TABLE console_accounts
    ALTER COLUMN login_h SET NOT NULL,
    ALTER COLUMN login_sealed SET NOT NULL,
    ADD CONSTRAINT console_accounts_login_h_key UNIQUE (login_h);

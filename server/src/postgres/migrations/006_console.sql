-- The console's accounts (hub users who sign in to the web console), one-time invitations,
-- sessions, failed sign-ins (throttling) and audit log.
CREATE TABLE console_accounts (
    user_id       UUID PRIMARY KEY,
    login         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL
);
CREATE TABLE console_invites (
    token_hash BYTEA PRIMARY KEY,
    user_id    UUID NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE TABLE console_sessions (
    id_hash    BYTEA PRIMARY KEY,
    user_id    UUID NOT NULL,
    csrf       TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    last_ms    BIGINT NOT NULL
);
CREATE INDEX console_sessions_by_user ON console_sessions (user_id);
CREATE TABLE console_failures (
    key      TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_ms  BIGINT NOT NULL
);
CREATE TABLE console_audit (
    seq     BIGSERIAL PRIMARY KEY,
    at_ms   BIGINT NOT NULL,
    user_id UUID,
    action  TEXT NOT NULL,
    record  UUID,
    detail  TEXT NOT NULL
);

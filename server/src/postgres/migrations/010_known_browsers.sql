-- Browsers that signed in to the console before, for each user who signed in on them: their
-- cookie spares them the throttling of sign-ins from unknown browsers (one address's or one
-- account's failures cannot lock out the people who use the console every day).
CREATE TABLE console_known_browsers (
    token_hash BYTEA  NOT NULL,
    user_id    UUID   NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (token_hash, user_id)
);

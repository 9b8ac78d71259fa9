-- When each device was last seen (written at most once a minute, `auth::SEEN_RESOLUTION_MS`).

ALTER TABLE devices ADD COLUMN last_seen_ms BIGINT;

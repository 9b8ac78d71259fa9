-- Until when a token no device used yet is good for a first sync (a QR code shown and never
-- scanned stops opening the user's scope); tokens issued before have no end.
ALTER TABLE devices ADD COLUMN unused_until_ms BIGINT;

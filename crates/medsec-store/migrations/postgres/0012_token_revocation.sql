-- Tokens can be taken back: a revoked token is refused on its next use. The token's id (what
-- lists show and revocation names) is the first 8 bytes of its SHA-256, computed, not stored.
ALTER TABLE operator_tokens ADD COLUMN revoked_at_ms BIGINT;
ALTER TABLE enrolment_tokens ADD COLUMN revoked_at_ms BIGINT;

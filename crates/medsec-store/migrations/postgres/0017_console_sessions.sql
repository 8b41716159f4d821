-- The web console's sessions, and what becomes one: an OpenID Connect sign-in under way (its
-- state, nonce and PKCE verifier) or a one-time sign-in link. Only the SHA-256 of the cookie's
-- or the link's secret is stored; the secret itself is never kept.
CREATE TABLE console_sessions (
    id_sha256     BYTEA PRIMARY KEY NOT NULL,
    kind          TEXT NOT NULL,
    principal     TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    roles         TEXT NOT NULL,
    csrf          TEXT NOT NULL,
    data          TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    last_seen_ms  BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at_ms);

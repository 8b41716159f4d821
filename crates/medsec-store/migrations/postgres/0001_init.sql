-- medsec schema v1 for PostgreSQL (scale-out). Timestamps are milliseconds since the Unix epoch.
CREATE TABLE devices (
    id            TEXT PRIMARY KEY NOT NULL,
    model         TEXT NOT NULL,
    state         TEXT NOT NULL,
    quarantined   BOOLEAN NOT NULL DEFAULT FALSE,
    status        TEXT NOT NULL DEFAULT '{}',
    created_at_ms BIGINT NOT NULL,
    last_seen_ms  BIGINT
);

-- Every key a device has been certified for: a key is certified once, so re-enrolment needs a new key.
CREATE TABLE device_keys (
    spki_sha256   BYTEA PRIMARY KEY NOT NULL,
    device_id     TEXT NOT NULL REFERENCES devices (id),
    serial        TEXT NOT NULL,
    not_after_ms  BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX device_keys_device ON device_keys (device_id);

-- One-time enrolment tokens, stored as SHA-256 of the token (tokens are 256-bit random).
CREATE TABLE enrolment_tokens (
    token_sha256  BYTEA PRIMARY KEY NOT NULL,
    device_id     TEXT NOT NULL REFERENCES devices (id),
    created_by    TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    used_at_ms    BIGINT
);

-- Operator API tokens, stored as SHA-256 of the token; roles are a comma-separated list.
CREATE TABLE operator_tokens (
    token_sha256  BYTEA PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    roles         TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);

-- The audit log: entries in order, and the signed tree heads over them.
CREATE TABLE audit_entries (
    seq   BIGINT PRIMARY KEY NOT NULL,
    entry TEXT NOT NULL
);
CREATE TABLE audit_heads (
    tree_size BIGINT PRIMARY KEY NOT NULL,
    head      TEXT NOT NULL
);

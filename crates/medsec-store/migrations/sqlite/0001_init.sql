-- medsec schema v1 for SQLite (the embedded default). Timestamps are milliseconds since the Unix epoch.
CREATE TABLE devices (
    id            TEXT PRIMARY KEY NOT NULL,
    model         TEXT NOT NULL,
    state         TEXT NOT NULL,
    quarantined   INTEGER NOT NULL DEFAULT 0,
    status        TEXT NOT NULL DEFAULT '{}',
    created_at_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER
) STRICT;

-- Every key a device has been certified for: a key is certified once, so re-enrolment needs a new key.
CREATE TABLE device_keys (
    spki_sha256   BLOB PRIMARY KEY NOT NULL,
    device_id     TEXT NOT NULL REFERENCES devices (id),
    serial        TEXT NOT NULL,
    not_after_ms  INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX device_keys_device ON device_keys (device_id);

-- One-time enrolment tokens, stored as SHA-256 of the token (tokens are 256-bit random).
CREATE TABLE enrolment_tokens (
    token_sha256  BLOB PRIMARY KEY NOT NULL,
    device_id     TEXT NOT NULL REFERENCES devices (id),
    created_by    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    used_at_ms    INTEGER
) STRICT;

-- Operator API tokens, stored as SHA-256 of the token; roles are a comma-separated list.
CREATE TABLE operator_tokens (
    token_sha256  BLOB PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    roles         TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
) STRICT;

-- The audit log: entries in order, and the signed tree heads over them.
CREATE TABLE audit_entries (
    seq   INTEGER PRIMARY KEY NOT NULL,
    entry TEXT NOT NULL
) STRICT;
CREATE TABLE audit_heads (
    tree_size INTEGER PRIMARY KEY NOT NULL,
    head      TEXT NOT NULL
) STRICT;

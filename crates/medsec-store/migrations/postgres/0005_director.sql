-- The director's per-device TUF metadata (Uptane): what each device is told to install, signed
-- with the director's online key. Kept so that versions only grow across restarts and replicas,
-- and so that a no-change poll is answered from one row. Replaced under an optimistic version
-- check (the row's metadata version).
CREATE TABLE director_metadata (
    device_id     TEXT PRIMARY KEY NOT NULL REFERENCES devices (id),
    version       BIGINT NOT NULL,
    assignment    TEXT NOT NULL,
    targets       BYTEA NOT NULL,
    snapshot      BYTEA NOT NULL,
    timestamp     BYTEA NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

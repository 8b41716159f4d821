-- Device telemetry (Defender): batches as devices sent them, each acknowledged only once this
-- transaction committed. A device's batches carry growing sequence numbers; the cursor holds
-- the last accepted one, so a replayed or reordered batch is refused, across replicas too
-- (the cursor moves only forward, under a conditional upsert).
CREATE TABLE telemetry_cursors (
    device_id     TEXT PRIMARY KEY NOT NULL REFERENCES devices (id),
    last_sequence INTEGER NOT NULL
) STRICT;

CREATE TABLE telemetry_batches (
    device_id      TEXT NOT NULL REFERENCES devices (id),
    sequence       INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    events         INTEGER NOT NULL,
    source         TEXT NOT NULL,
    body           BLOB NOT NULL,
    PRIMARY KEY (device_id, sequence)
) STRICT;

CREATE INDEX telemetry_batches_received ON telemetry_batches (device_id, received_at_ms);

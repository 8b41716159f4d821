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

-- Alerts raised by the Defender's rules on a batch, stored in the batch's transaction: a batch
-- acknowledged has had its alerts recorded.
CREATE TABLE alerts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id      TEXT NOT NULL REFERENCES devices (id),
    sequence       INTEGER NOT NULL,
    at_ms          INTEGER NOT NULL,
    raised_at_ms   INTEGER NOT NULL,
    rule           TEXT NOT NULL,
    severity       TEXT NOT NULL,
    body           TEXT NOT NULL
) STRICT;

CREATE INDEX alerts_device ON alerts (device_id, raised_at_ms);
CREATE INDEX alerts_raised ON alerts (raised_at_ms);

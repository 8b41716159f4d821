-- The sequence numbers a device skipped: a batch may arrive late (two MQTT consumers, two
-- replicas, a broker's redelivered backlog), so a number below the device's newest is
-- accepted once if it lies in one of these ranges, which it then splits. A range still open
-- past limits.telemetry_gap_timeout_secs raises the alert telemetry-gap once (alerted_at_ms).
CREATE TABLE telemetry_gaps (
    device_id      TEXT NOT NULL REFERENCES devices (id),
    first_sequence BIGINT NOT NULL,
    last_sequence  BIGINT NOT NULL,
    opened_at_ms   BIGINT NOT NULL,
    alerted_at_ms  BIGINT,
    PRIMARY KEY (device_id, first_sequence)
);

CREATE INDEX telemetry_gaps_open ON telemetry_gaps (opened_at_ms) WHERE alerted_at_ms IS NULL;

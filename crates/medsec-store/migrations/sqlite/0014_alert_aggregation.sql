-- Alerts aggregate: one row per (device, rule, key such as the destination) while it keeps
-- recurring within limits.alert_aggregate_secs of its last occurrence, with a count (occurrences); every
-- occurrence is kept in alert_hits (the batch it was raised on), so nothing is dropped and
-- the learned baselines still leave every alerted batch out. A suppressed occurrence is
-- stored and counted under its suppression (suppressed_by, 0 for none), never dropped.
ALTER TABLE alerts ADD COLUMN aggregate_key TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN occurrences INTEGER NOT NULL DEFAULT 1;
ALTER TABLE alerts ADD COLUMN last_seen_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN suppressed_by INTEGER NOT NULL DEFAULT 0;
UPDATE alerts SET last_seen_ms = raised_at_ms;
CREATE INDEX alerts_aggregate ON alerts (device_id, rule, aggregate_key, suppressed_by, last_seen_ms);
CREATE INDEX alerts_last_seen ON alerts (last_seen_ms);

CREATE TABLE alert_hits (
    alert_id       INTEGER NOT NULL REFERENCES alerts (id),
    device_id      TEXT NOT NULL,
    sequence       INTEGER NOT NULL,
    raised_at_ms   INTEGER NOT NULL
) STRICT;
CREATE INDEX alert_hits_device ON alert_hits (device_id, raised_at_ms);
INSERT INTO alert_hits (alert_id, device_id, sequence, raised_at_ms)
    SELECT id, device_id, sequence, raised_at_ms FROM alerts;

-- Suppressions: an operator's decision that a rule's alerts about a device, model, site or
-- destination are known and accepted, with a reason, until an expiry.
CREATE TABLE suppressions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    rule           TEXT NOT NULL,
    scope          TEXT NOT NULL,
    value          TEXT NOT NULL,
    reason         TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    lifted_at_ms   INTEGER
) STRICT;
CREATE INDEX suppressions_active ON suppressions (expires_at_ms) WHERE lifted_at_ms IS NULL;

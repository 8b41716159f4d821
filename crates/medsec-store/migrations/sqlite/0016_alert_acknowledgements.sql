-- An operator's acknowledgement of an alert: seen, and by whom, with a note. Kept beside the
-- alert (whose row the telemetry path keeps updating as occurrences are counted into it).
CREATE TABLE alert_acknowledgements (
    alert_id       INTEGER PRIMARY KEY REFERENCES alerts (id),
    acknowledged_by TEXT NOT NULL,
    at_ms          INTEGER NOT NULL,
    note           TEXT NOT NULL
) STRICT;

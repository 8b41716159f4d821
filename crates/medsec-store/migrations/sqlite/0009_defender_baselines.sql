-- Learned baselines (Defender), per device model and version: the baseline as JSON, signed
-- with the server's log key, so one changed in the database is refused at load. Versions only
-- grow; the newest is scored.
CREATE TABLE defender_baselines (
    model         TEXT NOT NULL,
    version       INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    body          TEXT NOT NULL,
    signature     TEXT NOT NULL,
    PRIMARY KEY (model, version)
) STRICT;

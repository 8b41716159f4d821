-- Signed version reports (Uptane-style manifests): a device asks for a single-use nonce, signs a
-- report of what it runs with its certified key, and the server keeps the report and updates the
-- inventory. The report and signature are kept as received, so they can be checked again later.
ALTER TABLE devices ADD COLUMN installed_version TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN release_counter INTEGER NOT NULL DEFAULT 0;

CREATE TABLE report_nonces (
    nonce         TEXT PRIMARY KEY NOT NULL,
    device_id     TEXT NOT NULL REFERENCES devices (id),
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX report_nonces_device ON report_nonces (device_id, created_at_ms);

CREATE TABLE version_reports (
    nonce           TEXT PRIMARY KEY NOT NULL,
    device_id       TEXT NOT NULL REFERENCES devices (id),
    received_at_ms  INTEGER NOT NULL,
    version         TEXT NOT NULL,
    release_counter INTEGER NOT NULL,
    payload         BLOB NOT NULL,
    signature       BLOB NOT NULL,
    certificate     BLOB NOT NULL
) STRICT;
CREATE INDEX version_reports_device ON version_reports (device_id, received_at_ms);

-- The fleet at a glance without reading every row of every table. The census and the risk
-- groups are read from these indexes alone (a GROUP BY over 100,000 devices in ~10 ms instead of
-- ~75 ms in SQLite); their columns change rarely (state, quarantine, model, the installed version
-- of a new signed report), so device polls do not pay for them. last_seen_ms, which every
-- contact writes, is left out.
CREATE INDEX devices_census ON devices (state, quarantined, model, installed_version);
CREATE INDEX devices_risk ON devices (hardware_id, installed_version, model, quarantined);
-- Each device's newest certificate expiry, kept beside the device as each key is certified, so
-- that "certificates expiring" is a column of the same scan that counts silent devices, not a
-- join over every key ever certified.
ALTER TABLE devices ADD COLUMN certificate_not_after_ms BIGINT;
UPDATE devices SET certificate_not_after_ms =
    (SELECT MAX(k.not_after_ms) FROM device_keys k WHERE k.device_id = devices.id);

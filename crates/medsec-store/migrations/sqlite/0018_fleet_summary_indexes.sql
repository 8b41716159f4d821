-- The fleet at a glance without reading every row: the census and the risk groups are read from
-- these indexes alone (a GROUP BY over 100,000 devices in ~10 ms instead of ~75 ms in SQLite),
-- and each device's newest certificate expiry from the key index. Their columns change rarely
-- (state, quarantine, model, the installed version of a new signed report), so device polls
-- do not pay for them; last_seen_ms, which every contact writes, is left out.
CREATE INDEX devices_census ON devices (state, quarantined, model, installed_version);
CREATE INDEX devices_risk ON devices (hardware_id, installed_version, model, quarantined);
CREATE INDEX device_keys_expiry ON device_keys (device_id, not_after_ms);

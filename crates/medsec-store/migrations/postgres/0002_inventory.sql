-- Inventory: what firmware a device accepts (hardware id), where it is (site), how operators group
-- it (for campaign selection). Set by operators; the version a device runs comes with signed version
-- reports (later migration).
ALTER TABLE devices ADD COLUMN hardware_id TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN site TEXT NOT NULL DEFAULT '';
CREATE INDEX devices_model ON devices (model);
CREATE INDEX devices_site ON devices (site);

CREATE TABLE device_groups (
    device_id TEXT NOT NULL REFERENCES devices (id),
    name      TEXT NOT NULL,
    PRIMARY KEY (device_id, name)
);
CREATE INDEX device_groups_name ON device_groups (name);

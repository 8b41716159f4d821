-- Update campaigns. The plan and every device's progress are one JSON document (the
-- medsec-campaign state machine), replaced as a whole under an optimistic version check so that
-- concurrent writers (server replicas, the CLI) never lose each other's changes.
CREATE TABLE campaigns (
    id            TEXT PRIMARY KEY NOT NULL,
    status        TEXT NOT NULL,
    state         TEXT NOT NULL,
    version       INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
) STRICT;

-- Which campaigns a device is in, for its polls.
CREATE TABLE campaign_devices (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    device_id   TEXT NOT NULL REFERENCES devices (id),
    PRIMARY KEY (campaign_id, device_id)
) STRICT;
CREATE INDEX campaign_devices_device ON campaign_devices (device_id);

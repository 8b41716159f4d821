-- Identity binding (Defender): the first value of each identity kind a device reported (its
-- MAC address), kept so that a later batch reporting another is caught as a cloned or
-- swapped device. Only the first insert for a (device, kind) counts.
CREATE TABLE identity_bindings (
    device_id   TEXT NOT NULL REFERENCES devices (id),
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    bound_at_ms INTEGER NOT NULL,
    PRIMARY KEY (device_id, kind)
) STRICT;

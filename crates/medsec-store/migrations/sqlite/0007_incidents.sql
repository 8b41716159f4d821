-- Defender incidents: alerts grouped per device, their NIST SP 800-61 phase, response actions
-- and reporting confirmation, kept as one JSON document (medsec_defender::incident::Incident)
-- replaced under an optimistic version check.
CREATE TABLE incidents (
    id            TEXT PRIMARY KEY NOT NULL,
    version       INTEGER NOT NULL,
    phase         TEXT NOT NULL,
    opened_at_ms  INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    body          TEXT NOT NULL
) STRICT;

CREATE INDEX incidents_open ON incidents (phase, updated_at_ms);

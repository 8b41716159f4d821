-- Risk and compliance: each release's SBOM (one row per hardware id the release is signed
-- for), advisory documents (OSV, CSAF, the KEV catalogue) and VEX documents, kept as received
-- after they were checked, so a device's findings follow from the release it reports.
CREATE TABLE release_sboms (
    target         TEXT NOT NULL,
    hardware_id    TEXT NOT NULL,
    version        TEXT NOT NULL,
    sha256         TEXT NOT NULL,
    body           TEXT NOT NULL,
    uploaded_at_ms BIGINT NOT NULL,
    PRIMARY KEY (target, hardware_id)
);
CREATE INDEX release_sboms_by_release ON release_sboms (hardware_id, version);
CREATE TABLE advisory_docs (
    identity       TEXT PRIMARY KEY,
    modified       TEXT NOT NULL,
    body           TEXT NOT NULL,
    imported_at_ms BIGINT NOT NULL
);
CREATE TABLE vex_docs (
    sha256         TEXT PRIMARY KEY,
    body           TEXT NOT NULL,
    imported_at_ms BIGINT NOT NULL
);

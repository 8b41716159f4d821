-- The asset inventory's records that no device reports: model profiles (vendor, clinical
-- class, network reach, vendor support, MDS2 answers) and the vendor registry (security
-- documents received, contract terms). Kept as the checked JSON, one row per name.
CREATE TABLE asset_records (
    kind          TEXT NOT NULL CHECK (kind IN ('model', 'vendor')),
    name          TEXT NOT NULL,
    body          TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, name)
) STRICT;

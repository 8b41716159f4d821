//! The firmware risk scenario shared by the CLI and server tests: two releases of an infusion
//! pump's firmware, advisories for its OpenSSL and BusyBox, and the manufacturer's VEX.

use std::path::Path;

/// A firmware release's SBOM: OpenSSL by purl, BusyBox by CPE only, a blob with neither.
pub fn firmware_sbom(product: &str, version: &str, openssl: &str, busybox: &str) -> String {
    serde_json::json!({
        "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
        "metadata": {"component": {"type": "firmware", "name": product, "version": version,
                                   "bom-ref": "fw", "purl": format!("pkg:generic/acme/{product}@{version}")}},
        "components": [
            {"type": "library", "name": "openssl", "version": openssl, "bom-ref": "openssl",
             "purl": format!("pkg:generic/openssl@{openssl}")},
            {"type": "application", "name": "busybox", "version": busybox, "bom-ref": "busybox",
             "cpe": format!("cpe:2.3:a:busybox:busybox:{busybox}:*:*:*:*:*:*:*")},
            {"type": "library", "name": "vendor-blob", "bom-ref": "blob"}
        ]
    })
    .to_string()
}

/// Advisories as a manufacturer's feed would hold them: an OSV record for OpenSSL (by purl,
/// an ECOSYSTEM range), a CSAF advisory for BusyBox (by CPE, a vers range) and the KEV
/// catalogue. The vulnerabilities are real; the KEV entry is made up for the test.
pub fn firmware_advisories(dir: &Path) {
    std::fs::create_dir_all(dir.join("osv")).unwrap();
    let osv = serde_json::json!({
        "schema_version": "1.6.0", "id": "CVE-2022-3602", "modified": "2026-11-01T00:00:00Z",
        "summary": "X.509 email address 4-byte buffer overflow",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
        "affected": [{"package": {"ecosystem": "OSS-Fuzz", "name": "openssl", "purl": "pkg:generic/openssl"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "3.0.0"}, {"fixed": "3.0.7"}]}]}]
    });
    std::fs::write(dir.join("osv/CVE-2022-3602.json"), osv.to_string()).unwrap();
    let csaf = serde_json::json!({
        "document": {
            "category": "csaf_security_advisory", "csaf_version": "2.0",
            "publisher": {"category": "vendor", "name": "BusyBox maintainers", "namespace": "https://busybox.net"},
            "title": "BusyBox netstat escape sequences",
            "tracking": {"id": "BB-2022-0001", "status": "final", "version": "1",
                         "initial_release_date": "2022-04-03T00:00:00Z", "current_release_date": "2022-04-03T00:00:00Z",
                         "revision_history": [{"date": "2022-04-03T00:00:00Z", "number": "1", "summary": "Initial"}]}
        },
        "product_tree": {"branches": [{"category": "vendor", "name": "BusyBox", "branches": [
            {"category": "product_name", "name": "BusyBox", "branches": [
                {"category": "product_version_range", "name": "vers:generic/<1.36.0",
                 "product": {"product_id": "BB-OLD", "name": "BusyBox before 1.36.0",
                             "product_identification_helper": {"cpe": "cpe:2.3:a:busybox:busybox:*:*:*:*:*:*:*:*"}}},
                {"category": "product_version", "name": "1.36.0",
                 "product": {"product_id": "BB-1.36.0", "name": "BusyBox 1.36.0",
                             "product_identification_helper": {"cpe": "cpe:2.3:a:busybox:busybox:1.36.0:*:*:*:*:*:*:*"}}}
            ]}]}]},
        "vulnerabilities": [{
            "cve": "CVE-2022-28391",
            "product_status": {"known_affected": ["BB-OLD"], "fixed": ["BB-1.36.0"]},
            "scores": [{"products": ["BB-OLD"], "cvss_v3": {"version": "3.1",
                "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H",
                "baseScore": 8.8, "baseSeverity": "HIGH"}}],
            "remediations": [{"category": "vendor_fix", "details": "Upgrade to 1.36.0", "product_ids": ["BB-OLD"]}]
        }]
    });
    std::fs::write(dir.join("bb-2022-0001.json"), csaf.to_string()).unwrap();
    let kev = serde_json::json!({"catalogVersion": "2026.11.30", "count": 1, "vulnerabilities": [
        {"cveID": "CVE-2022-3602", "dateAdded": "2026-11-30", "dueDate": "2026-12-21",
         "knownRansomwareCampaignUse": "Unknown"}]});
    std::fs::write(dir.join("kev.json"), kev.to_string()).unwrap();
}

/// The manufacturer's OpenVEX: ip200 1.2.0 does not run BusyBox's vulnerable netstat code.
pub fn firmware_vex() -> String {
    serde_json::json!({
        "@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://acme.example/vex/1",
        "author": "Acme PSIRT", "timestamp": "2026-12-01T00:00:00Z", "version": 1,
        "statements": [{"vulnerability": {"name": "CVE-2022-28391"},
                        "products": [{"@id": "pkg:generic/acme/acme-ip200@1.2.0",
                                      "subcomponents": [{"@id": "cpe:2.3:a:busybox:busybox:1.35.0:*:*:*:*:*:*:*"}]}],
                        "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path"}]
    })
    .to_string()
}

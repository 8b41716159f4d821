//! Any bytes as an SBOM never panic `Sbom::parse` or its completeness score; an accepted SBOM
//! scores between 0 and 100. Any text as a CVSS vector never panics `cvss::score`, and an
//! accepted vector scores between 0 and 10.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sbom) = medsec_risk::sbom::Sbom::parse(data) {
        let c = sbom.completeness();
        assert!((0.0..=100.0).contains(&c.score));
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(s) = medsec_risk::cvss::score(text)
    {
        assert!((0.0..=10.0).contains(&s.base));
    }
});

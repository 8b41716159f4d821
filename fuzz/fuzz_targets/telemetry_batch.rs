//! Device telemetry batches as the server receives them: arbitrary bytes never panic
//! `Batch::parse`, and whatever it accepts serialises and parses back to the same batch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medsec_defender::telemetry::Batch;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = Batch::parse(data, 10_000) {
        let again = serde_json::to_vec(&batch).expect("a parsed batch serialises");
        assert_eq!(Batch::parse(&again, 10_000).as_ref(), Ok(&batch));
    }
});

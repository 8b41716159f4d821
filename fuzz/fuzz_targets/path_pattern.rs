//! Delegation path patterns never panic and `*` never crosses a `/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let (pattern, target) = input;
    if medsec_tuf::pattern::matches(pattern, target) {
        assert_eq!(pattern.matches('/').count(), target.matches('/').count());
    }
});

//! Parsing any bytes as any role's metadata never panics, and canonical JSON of what parses is
//! stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medsec_tuf::{Envelope, Root, Snapshot, Targets, Timestamp};

fuzz_target!(|data: &[u8]| {
    let Ok(env) = Envelope::parse("fuzz", data) else {
        return;
    };
    let _ = Root::from_envelope(&env);
    let _ = Timestamp::from_envelope(&env);
    let _ = Snapshot::from_envelope(&env);
    if let Ok(t) = Targets::from_envelope("targets", &env)
        && let Some(d) = &t.delegations
    {
        let _ = d.roles_for_target("a/b.img");
    }
    // The text canonicaliser and the tree canonicaliser agree.
    let tree = medsec_tuf::canonical::to_vec(&env.signed_value().unwrap()).unwrap();
    assert_eq!(tree, env.canonical);
});

//! Feeding arbitrary bytes to every step of the trusted-metadata state machine never panics and
//! never accepts unsigned data: the fixed root's keys are not available to the fuzzer.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use medsec_crypto::{KeySource as _, Scheme, SigningKey};
use medsec_tuf::{Expires, Key, Role, Root, TrustedSet};

fn root() -> &'static [u8] {
    static ROOT: OnceLock<Vec<u8>> = OnceLock::new();
    ROOT.get_or_init(|| {
        let k = SigningKey::generate(Scheme::Ed25519).unwrap();
        let id = Key::from_public(k.public_key()).key_id().unwrap();
        let far = Expires::from_datetime(time::OffsetDateTime::now_utc() + time::Duration::days(3650));
        let mut r = Root::new(1, far, true);
        r.keys.insert(id.clone(), Key::from_public(k.public_key()));
        for role in medsec_tuf::TOP_LEVEL_ROLES {
            r.roles.insert(role.into(), Role::new(vec![id.clone()], 1));
        }
        medsec_tuf::sign(&r, &[&k]).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let mut t = TrustedSet::new(root(), time::OffsetDateTime::now_utc()).unwrap();
    let parts: Vec<&[u8]> = data.splitn(4, |b| *b == 0xff).collect();
    let get = |i: usize| parts.get(i).copied().unwrap_or_default();
    assert!(t.update_root(get(0)).is_err());
    assert!(t.update_timestamp(get(1)).is_err());
    assert!(t.update_snapshot(get(2), false).is_err());
    assert!(t.update_targets(get(3)).is_err());
});

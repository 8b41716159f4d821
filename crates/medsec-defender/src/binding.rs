//! Identity binding: the identities a device is known by. A device certificate binds a device
//! id; enrolment and the first authenticated sessions bind the addresses and MAC addresses it
//! uses. Traffic that claims the device but comes from an identity outside its binding is a
//! spoofed or cloned device, found deterministically: no threshold, no false positive from
//! unusual but honest behaviour.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The identities bound to each device, by kind (`certificate`, `mac`, `address`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityBinding {
    bound: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

/// Traffic from an identity that is not bound to the device it claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingViolation {
    /// The device claimed.
    pub device: String,
    /// The kind of identity (`mac`, `address`, `certificate`).
    pub kind: String,
    /// What was seen.
    pub observed: String,
    /// What the device is bound to.
    pub bound: Vec<String>,
}

impl IdentityBinding {
    /// An empty binding.
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds `value` of `kind` to `device` (identities are compared case-insensitively and
    /// trimmed, as MAC addresses are written both ways).
    pub fn bind(&mut self, device: &str, kind: &str, value: &str) {
        self.bound
            .entry(device.to_owned())
            .or_default()
            .entry(kind.to_owned())
            .or_default()
            .insert(value.trim().to_ascii_lowercase());
    }

    /// Checks what a flow or session presents for `device`: each `(kind, value)` must be bound.
    /// A kind with nothing bound yet is not judged (the binding has not learned it).
    pub fn check(&self, device: &str, presented: &[(&str, &str)]) -> Vec<BindingViolation> {
        let Some(kinds) = self.bound.get(device) else {
            return presented
                .iter()
                .map(|(kind, value)| BindingViolation {
                    device: device.to_owned(),
                    kind: (*kind).to_owned(),
                    observed: value.trim().to_ascii_lowercase(),
                    bound: Vec::new(),
                })
                .collect();
        };
        presented
            .iter()
            .filter_map(|(kind, value)| {
                let set = kinds.get(*kind)?;
                let v = value.trim().to_ascii_lowercase();
                (!set.contains(&v)).then(|| BindingViolation {
                    device: device.to_owned(),
                    kind: (*kind).to_owned(),
                    observed: v,
                    bound: set.iter().cloned().collect(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, reason = "test code")]
mod tests {
    use super::*;

    #[test]
    fn a_cloned_device_on_another_mac_is_caught_and_the_real_one_is_not() {
        let mut b = IdentityBinding::new();
        b.bind("monitor-7", "mac", "84:3A:4B:0F:5B:94");
        b.bind("monitor-7", "address", "10.0.1.172");
        assert!(
            b.check(
                "monitor-7",
                &[("mac", "84:3a:4b:0f:5b:94"), ("address", "10.0.1.172")]
            )
            .is_empty()
        );
        let v = b.check(
            "monitor-7",
            &[("mac", "d8:9e:f3:95:02:75"), ("address", "10.0.1.172")],
        );
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kind, "mac");
        assert_eq!(v[0].bound, vec!["84:3a:4b:0f:5b:94".to_owned()]);
        // A kind not learned yet is not judged; a device never bound is a violation outright.
        assert!(b.check("monitor-7", &[("certificate", "abc")]).is_empty());
        assert_eq!(b.check("pump-unknown", &[("mac", "x")]).len(), 1);
    }
}

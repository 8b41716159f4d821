//! Identity binding: the identities a device is known by. A device certificate binds a device
//! id; enrolment and the first authenticated sessions bind the addresses and MAC addresses it
//! uses. Traffic that claims the device but comes from an identity outside its binding is a
//! spoofed or cloned device, found deterministically: no threshold, no false positive from
//! unusual but honest behaviour.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::rules::{Alert, Evidence, Severity, technique};
use crate::telemetry::{Batch, Event};

/// The first MAC address a batch reports (`identity` events), lower-cased.
pub fn reported_mac(batch: &Batch) -> Option<(i64, String)> {
    batch.events.iter().find_map(|e| match e {
        Event::Identity { at_ms, mac } => Some((*at_ms, mac.to_ascii_lowercase())),
        _ => None,
    })
}

/// The alerts of a batch whose `identity` events report a MAC address other than the one bound
/// to the device (the first it ever reported): a cloned device, or a swapped board that needs
/// re-binding. Comparison ignores case.
pub fn mac_alerts(bound: &str, batch: &Batch) -> Vec<Alert> {
    let bound = bound.to_ascii_lowercase();
    let mut seen = BTreeSet::new();
    batch
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Identity { at_ms, mac } => {
                let mac = mac.to_ascii_lowercase();
                (mac != bound && seen.insert(mac.clone())).then(|| Alert {
                    at_ms: *at_ms,
                    rule: "identity-mac-changed".into(),
                    severity: Severity::Critical,
                    technique: technique("T0849", "Masquerading"),
                    summary: format!(
                        "the device's certificate is used from MAC address {mac}, but the device \
                         is bound to {bound}: a cloned device, or hardware swapped without re-binding"
                    ),
                    evidence: vec![Evidence {
                        feature: "mac".into(),
                        observed: mac,
                        expected: bound.clone(),
                    }],
                })
            }
            _ => None,
        })
        .collect()
}

/// The alert when `current`, the address a batch came from, differs from the newest of
/// `recent` of its family (the addresses of the device's batches within the window, newest
/// first) and is also among the older ones: the certificate is in use from two places, alternating, which a
/// device that merely moved (a new DHCP lease) does not do.
pub fn address_alert(
    recent: &[std::net::IpAddr],
    current: std::net::IpAddr,
    at_ms: i64,
    window_secs: u64,
) -> Option<Alert> {
    // Only addresses of the current one's family count: a dual-stack device may reach the
    // server over IPv4 and IPv6 by turns (happy eyeballs), which is one device, not two.
    let same: Vec<std::net::IpAddr> = recent
        .iter()
        .copied()
        .filter(|a| a.is_ipv4() == current.is_ipv4())
        .collect();
    let newest = *same.first()?;
    if newest == current || !same.iter().skip(1).any(|a| *a == current) {
        return None;
    }
    Some(Alert {
        at_ms,
        rule: "identity-address-conflict".into(),
        severity: Severity::Critical,
        technique: technique("T0849", "Masquerading"),
        summary: format!(
            "the device's certificate is in use from {current} and {newest}, alternating within \
             {window_secs} s: two devices hold one identity (a cloned certificate and key)"
        ),
        evidence: vec![Evidence {
            feature: "source address".into(),
            observed: current.to_string(),
            expected: newest.to_string(),
        }],
    })
}

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
mod tests {
    use super::*;

    #[test]
    fn a_changed_mac_and_alternating_addresses_are_caught_and_a_move_is_not() {
        let batch = Batch::parse(
            br#"{"sequence": 1, "events": [
              {"kind": "identity", "at_ms": 5, "mac": "02:00:00:AA:BB:CC"},
              {"kind": "identity", "at_ms": 6, "mac": "02:00:00:aa:bb:cd"},
              {"kind": "identity", "at_ms": 7, "mac": "02:00:00:aa:bb:cd"}]}"#,
            10,
        )
        .unwrap();
        assert_eq!(
            reported_mac(&batch),
            Some((5, "02:00:00:aa:bb:cc".to_owned()))
        );
        assert!(mac_alerts("02:00:00:aa:bb:cc", &batch).len() == 1);
        let a = &mac_alerts("02:00:00:aa:bb:cc", &batch)[0];
        assert_eq!(a.rule, "identity-mac-changed");
        assert_eq!(a.evidence[0].observed, "02:00:00:aa:bb:cd");
        assert!(mac_alerts("02:00:00:aa:bb:cd", &batch).len() == 1);
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        // A then B then A: two holders.
        let alert = address_alert(&[ip("10.0.0.2"), ip("10.0.0.1")], ip("10.0.0.1"), 9, 600);
        assert_eq!(alert.unwrap().evidence[0].expected, "10.0.0.2");
        // A device that moved once, or stays, is not judged.
        assert!(address_alert(&[ip("10.0.0.1"), ip("10.0.0.1")], ip("10.0.0.2"), 9, 600).is_none());
        assert!(address_alert(&[ip("10.0.0.2"), ip("10.0.0.1")], ip("10.0.0.2"), 9, 600).is_none());
        assert!(address_alert(&[], ip("10.0.0.2"), 9, 600).is_none());
        // A dual-stack device alternating between its IPv4 and IPv6 addresses is one device.
        assert!(address_alert(&[ip("fd00::5"), ip("10.0.0.1")], ip("10.0.0.1"), 9, 600).is_none());
        assert!(
            address_alert(
                &[ip("fd00::5"), ip("10.0.0.2"), ip("10.0.0.1")],
                ip("10.0.0.1"),
                9,
                600
            )
            .is_some()
        );
        // Bad MACs are refused at parse time, by name.
        let e = Batch::parse(
            br#"{"sequence": 1, "events": [{"kind": "identity", "at_ms": 5, "mac": "02:00:00:aa:bb"}]}"#,
            10,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a MAC address"), "{e}");
    }

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

//! Revocation made beside the running server (`medsec ca revoke` + `medsec ca crl`) reaches the
//! store: a device whose every certificate the CA has revoked, one of them for a reason other
//! than `superseded`, is marked `revoked` in its record. Every path that reads the record then
//! refuses it: HTTPS requests, and each MQTT message, which the broker relays from a connection
//! it may have accepted before the CRL changed. Each replica runs this after reloading a changed
//! CRL (and once at start); marking is idempotent, so replicas sharing a store agree.

use std::collections::BTreeMap;

use medsec_store::prelude::*;

use crate::audit_log::event;
use crate::state::AppState;

/// The principal of the entries this writes: the CA's own record of revocation.
const PRINCIPAL: &str = "System::\"ca\"";

/// Marks revoked the devices the CA revoked offline, audits each, and returns their ids.
pub(crate) async fn sync_store(state: &AppState) -> Result<Vec<String>, crate::Error> {
    // device → (every certificate revoked, the revocations that were not a supersession)
    let mut by_device: BTreeMap<String, (bool, Vec<(String, String)>)> = BTreeMap::new();
    {
        let mut ca = state.ca.lock().await;
        ca.reload_state()?;
        for c in ca.issued() {
            let entry = by_device
                .entry(c.device_id.as_str().to_owned())
                .or_insert((true, Vec::new()));
            match &c.revoked {
                None => entry.0 = false,
                Some(r) if r.reason != "superseded" => {
                    entry.1.push((c.serial.clone(), r.reason.clone()));
                }
                Some(_) => {}
            }
        }
    }
    let mut marked = Vec::new();
    for (id, (all_revoked, reasons)) in by_device {
        if !all_revoked || reasons.is_empty() {
            continue;
        }
        let device = match state.store.device(&id).await {
            Ok(d) => d,
            // A certificate of a device the store does not hold (a test CA, a pruned record).
            Err(medsec_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        if !matches!(device.state.as_str(), "enrolled" | "quarantined") {
            continue;
        }
        state.store.set_device_state(&id, "revoked").await?;
        let mut e = event(
            "revocation",
            PRINCIPAL,
            "device.revoke",
            &format!("Device::{id:?}"),
            "info",
        );
        e.detail = format!(
            "marked revoked: the CRL lists its certificate(s) {} (revoked outside the server)",
            reasons
                .iter()
                .map(|(serial, reason)| format!("{serial} ({reason})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        state.audit(e).await?;
        tracing::warn!(
            device = id.as_str(),
            "device revoked offline: marked revoked in the store"
        );
        marked.push(id);
    }
    Ok(marked)
}

//! Incidents, the service side: alerts grouped per device into the device's open incident as
//! they are raised ([`group`]), and the stored form of an incident. The NIST SP 800-61 phases,
//! confirmation with its reporting clocks and the response playbooks are on the operator API
//! (`api/incidents.rs`).

use medsec_defender::incident::{AlertRef, Incident, Phase};
use medsec_store::IncidentRow;
use medsec_store::prelude::*;

use crate::audit_log::event;
use crate::state::AppState;

/// Tries of an optimistic update before giving up (another writer kept winning).
pub(crate) const TRIES: usize = 5;

/// A phase as its JSON name (`detection`, `containment`, ...).
pub(crate) fn phase_name(p: Phase) -> String {
    serde_json::to_value(p)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The stored form of an incident at `version`.
pub(crate) fn to_row(i: &Incident, version: i64) -> Result<IncidentRow, crate::Error> {
    Ok(IncidentRow {
        id: i.id.clone(),
        version,
        phase: phase_name(i.phase),
        opened_at_ms: i.opened_at_ms,
        updated_at_ms: i.updated_at_ms,
        body: serde_json::to_string(i).map_err(|e| crate::Error::Internal {
            reason: format!("incident {}: {e}", i.id),
        })?,
    })
}

/// An incident as stored; one that no longer reads is an internal error.
pub(crate) fn from_row(row: &IncidentRow) -> Result<Incident, crate::Error> {
    serde_json::from_str(&row.body).map_err(|e| crate::Error::Internal {
        reason: format!("incident {}: {e}", row.id),
    })
}

/// Attaches alerts just raised on `device` to its open incident, or opens one. Called after
/// the alerts are stored; a crash in between leaves them listed under the device without an
/// incident.
pub(crate) async fn group(
    state: &AppState,
    device: &str,
    alerts: Vec<AlertRef>,
    now: i64,
) -> Result<(), crate::Error> {
    let Some(first) = alerts.first().cloned() else {
        return Ok(());
    };
    for _ in 0..TRIES {
        let open = state.store.incidents(true, 1000).await?;
        let mut found = None;
        for row in &open {
            let incident = from_row(row)?;
            if incident.takes(device, now) {
                found = Some((incident, row.version));
                break;
            }
        }
        match found {
            Some((mut incident, version)) => {
                for a in &alerts {
                    incident.attach(a.clone());
                }
                if state
                    .store
                    .update_incident(&to_row(&incident, version)?)
                    .await?
                {
                    return Ok(());
                }
            }
            None => {
                let id = format!(
                    "inc-{}",
                    crate::tokens::nonce()?
                        .chars()
                        .filter(char::is_ascii_alphanumeric)
                        .take(12)
                        .collect::<String>()
                        .to_ascii_lowercase()
                );
                let mut incident =
                    Incident::open(&id, first.clone(), &format!("{}: {}", device, first.rule));
                for a in alerts.iter().skip(1) {
                    incident.attach(a.clone());
                }
                state.store.create_incident(&to_row(&incident, 1)?).await?;
                let mut e = event("incident", "system", "incident.open", &id, "info");
                e.detail = format!(
                    "opened on {} alert(s) of {device}, severity {:?}",
                    alerts.len(),
                    incident.severity
                );
                state.audit(e).await?;
                return Ok(());
            }
        }
    }
    Err(crate::Error::Contended {
        reason: "the incident kept changing under this update; try again".into(),
    })
}

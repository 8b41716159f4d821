//! Campaigns in the server: the operator's device selection resolved against the inventory,
//! and the `medsec-campaign` state machine stored as one JSON document, changed under an
//! optimistic version check so that replicas and the CLI never lose each other's changes.

use medsec_campaign::{Campaign, Member, Spec};
use medsec_store::{CampaignRow, DeviceQuery, Store};
use serde::Deserialize;

use crate::Error;

/// Which devices a campaign covers: inventory filters (combined with AND) and/or named devices.
/// Revoked devices are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Every device (filters then narrow it).
    #[serde(default)]
    pub all: bool,
    /// Only this model.
    pub model: Option<String>,
    /// Only this site.
    pub site: Option<String>,
    /// Only members of this group.
    pub group: Option<String>,
    /// These devices too (each must exist).
    #[serde(default)]
    pub devices: Vec<String>,
}

impl Selection {
    fn filters(&self) -> bool {
        self.all || self.model.is_some() || self.site.is_some() || self.group.is_some()
    }
}

/// Most devices one campaign may cover.
pub const MAX_DEVICES: usize = 200_000;

/// The devices `selection` names, with their sites, in id order.
pub async fn resolve<S: Store>(store: &S, selection: &Selection) -> Result<Vec<Member>, Error> {
    let bad = |reason: String| Error::Config { reason };
    if !selection.filters() && selection.devices.is_empty() {
        return Err(bad(
            "the selection is empty: give all, model, site, group or devices".into(),
        ));
    }
    let mut members = std::collections::BTreeMap::new();
    if selection.filters() {
        let mut query = DeviceQuery {
            limit: 1000,
            model: selection.model.clone(),
            site: selection.site.clone(),
            group: selection.group.clone(),
            ..DeviceQuery::default()
        };
        loop {
            let page = store.devices(&query).await?;
            let full = page.len() == 1000;
            query.after = page.last().map(|d| d.id.clone());
            for d in page {
                if d.state != "revoked" {
                    members.insert(d.id.clone(), d.site);
                }
            }
            if members.len() > MAX_DEVICES {
                return Err(bad(format!(
                    "the selection matches more than {MAX_DEVICES} devices: narrow it"
                )));
            }
            if !full {
                break;
            }
        }
    }
    for id in &selection.devices {
        match store.device(id).await {
            Ok(d) if d.state == "revoked" => {
                return Err(bad(format!("device {id:?} in the selection is revoked")));
            }
            Ok(d) => {
                members.insert(d.id, d.site);
            }
            Err(medsec_store::Error::NotFound { .. }) => {
                return Err(bad(format!(
                    "device {id:?} in the selection does not exist"
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(members
        .into_iter()
        .map(|(device, site)| Member { device, site })
        .collect())
}

fn campaign_error(e: medsec_campaign::Error) -> Error {
    Error::Config {
        reason: e.to_string(),
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config {
            reason: format!(
                "campaign name {name:?} is not allowed: use 1 to 64 of A-Z a-z 0-9 . _ -"
            ),
        })
    }
}

/// Plans and stores a campaign (status `created`); `Conflict` if the name is taken.
pub async fn create<S: Store>(
    store: &S,
    spec: Spec,
    selection: &Selection,
    created_by: &str,
    now_ms: i64,
) -> Result<Campaign, Error> {
    check_name(&spec.name)?;
    spec.check().map_err(campaign_error)?;
    let members = resolve(store, selection).await?;
    let campaign = Campaign::plan(spec, &members).map_err(campaign_error)?;
    let row = CampaignRow {
        id: campaign.spec().name.clone(),
        status: campaign.status().name().to_owned(),
        state: to_json(&campaign)?,
        version: 1,
        created_by: created_by.to_owned(),
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
    };
    let ids: Vec<String> = members.into_iter().map(|m| m.device).collect();
    store.create_campaign(&row, &ids).await?;
    Ok(campaign)
}

fn to_json(c: &Campaign) -> Result<String, Error> {
    serde_json::to_string(c).map_err(|e| Error::Config {
        reason: format!("campaign state does not serialise: {e}"),
    })
}

/// A stored campaign, ready to use.
pub fn load(row: &CampaignRow) -> Result<Campaign, Error> {
    let mut c: Campaign = serde_json::from_str(&row.state).map_err(|e| Error::Config {
        reason: format!("stored campaign {:?} does not parse: {e}", row.id),
    })?;
    c.compile_windows().map_err(campaign_error)?;
    Ok(c)
}

/// Applies `change` to the stored campaign and saves it, retrying when another writer got
/// there first (at most 8 times). Returns the campaign as saved.
pub async fn change<S: Store>(
    store: &S,
    id: &str,
    now_ms: i64,
    change: impl Fn(&mut Campaign) -> Result<(), medsec_campaign::Error>,
) -> Result<Campaign, Error> {
    for _ in 0..8 {
        let row = store.campaign(id).await?;
        let mut c = load(&row)?;
        change(&mut c).map_err(campaign_error)?;
        if store
            .update_campaign(id, row.version, c.status().name(), &to_json(&c)?, now_ms)
            .await?
        {
            return Ok(c);
        }
    }
    Err(Error::Config {
        reason: format!("campaign {id:?} is changing too often to update: try again"),
    })
}

/// What operators do to a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Open the canary wave.
    Start,
    /// Offer nothing new until resumed.
    Pause,
    /// Continue a paused campaign.
    Resume,
    /// Stop for good.
    Abort,
}

impl Control {
    /// From its name in URLs and on the command line.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "start" => Control::Start,
            "pause" => Control::Pause,
            "resume" => Control::Resume,
            "abort" => Control::Abort,
            _ => return None,
        })
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Control::Start => "start",
            Control::Pause => "pause",
            Control::Resume => "resume",
            Control::Abort => "abort",
        }
    }

    /// The Cedar action it needs: starting and resuming `campaign.start`, pausing and aborting
    /// `campaign.stop` (so a security officer can stop a rollout they may not start).
    pub fn action(self) -> &'static str {
        match self {
            Control::Start | Control::Resume => "campaign.start",
            Control::Pause | Control::Abort => "campaign.stop",
        }
    }
}

/// Applies an operator's control to the stored campaign.
pub async fn control<S: Store>(
    store: &S,
    id: &str,
    control: Control,
    now_ms: i64,
) -> Result<Campaign, Error> {
    change(store, id, now_ms, |c| match control {
        Control::Start => c.start(now_ms),
        Control::Pause => c.pause(),
        Control::Resume => c.resume(now_ms),
        Control::Abort => c.abort(now_ms),
    })
    .await
}

/// The JSON operators see: status, release, per-wave progress, and (if asked) every device.
pub fn view(row: &CampaignRow, c: &Campaign, with_devices: bool) -> serde_json::Value {
    let mut v = serde_json::json!({
        "id": row.id,
        "status": c.status(),
        "release": c.spec().release,
        "canary": c.spec().canary,
        "growth": c.spec().growth,
        "max_failure_rate": c.spec().max_failure_rate,
        "windows": c.spec().windows,
        "created_by": row.created_by,
        "created_at_ms": row.created_at_ms,
        "updated_at_ms": row.updated_at_ms,
        "waves": c.progress(),
    });
    if with_devices && let Some(map) = v.as_object_mut() {
        let devices: Vec<serde_json::Value> = c
            .devices()
            .map(|(id, wave, state)| serde_json::json!({ "device": id, "wave": wave, "progress": state }))
            .collect();
        map.insert("devices".into(), devices.into());
    }
    v
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn names_are_checked() {
        check_name("fix-1.2_b").unwrap();
        for bad in ["", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}

//! Campaigns in the server: the operator's device selection resolved against the inventory,
//! and the `medsec-campaign` state machine stored as one JSON document, changed under an
//! optimistic version check so that replicas and the CLI never lose each other's changes.

use medsec_campaign::{Campaign, Member, Spec};
use medsec_store::{CampaignRow, DeviceQuery, Store};
use serde::Deserialize;

use std::sync::Arc;

use crate::Error;
use crate::director::{ImageRepository, check_release};

/// Which devices a campaign covers: inventory filters (combined with AND) and/or named devices.
/// Revoked devices are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
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

/// The most `limits.max_campaign_devices` may allow.
pub const MAX_DEVICES: usize = 200_000;

/// The devices `selection` names, with their sites, in id order, and each one's hardware id;
/// refused when they are more than `max_devices` (`limits.max_campaign_devices`).
pub async fn resolve<S: Store>(
    store: &S,
    selection: &Selection,
    max_devices: usize,
) -> Result<Vec<(Member, String)>, Error> {
    let bad = |reason: String| Error::Config { reason };
    let too_many = || {
        bad(format!(
            "the selection matches more than {max_devices} devices \
             (limits.max_campaign_devices): narrow it or split the rollout into several campaigns"
        ))
    };
    if selection.devices.len() > max_devices {
        return Err(too_many());
    }
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
                if d.state != "revoked" && d.state != crate::tokens::DECOMMISSIONED {
                    members.insert(d.id.clone(), (d.site, d.hardware_id));
                }
            }
            if members.len() > max_devices {
                return Err(too_many());
            }
            if !full {
                break;
            }
        }
    }
    for id in &selection.devices {
        match store.device(id).await {
            Ok(d) if d.state == "revoked" || d.state == crate::tokens::DECOMMISSIONED => {
                return Err(bad(format!(
                    "device {id:?} in the selection is {}",
                    d.state
                )));
            }
            Ok(d) => {
                members.insert(d.id, (d.site, d.hardware_id));
            }
            Err(medsec_store::Error::NotFound { .. }) => {
                return Err(bad(format!(
                    "device {id:?} in the selection does not exist"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        if members.len() > max_devices {
            return Err(too_many());
        }
    }
    Ok(members
        .into_iter()
        .map(|(device, (site, hardware_id))| (Member { device, site }, hardware_id))
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
    if name == "preview" {
        // `/api/v1/campaigns/preview` is the planning preview, not a campaign.
        return Err(Error::Config {
            reason: "campaign name \"preview\" is reserved: choose another".into(),
        });
    }
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

/// Plans and stores a campaign (status `created`); `Conflict` if the name is taken. The release
/// must be in the image repository, with the version and release counter the spec says, built
/// for the hardware id of every selected device.
pub async fn create<S: Store>(
    store: &S,
    image: Option<&Arc<ImageRepository>>,
    spec: Spec,
    selection: &Selection,
    max_devices: usize,
    created_by: &str,
    now_ms: i64,
) -> Result<Campaign, Error> {
    let (campaign, members) = plan(store, image, spec, selection, max_devices).await?;
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

/// What [`create`] would store, checked the same way (name, spec, selection, release in the
/// image repository for every hardware id), without storing it: the preview of a campaign.
pub async fn plan<S: Store>(
    store: &S,
    image: Option<&Arc<ImageRepository>>,
    spec: Spec,
    selection: &Selection,
    max_devices: usize,
) -> Result<(Campaign, Vec<Member>), Error> {
    check_name(&spec.name)?;
    spec.check().map_err(campaign_error)?;
    let image = image.ok_or_else(|| Error::Config {
        reason: "no image_repository is configured: a campaign needs one to deliver its release"
            .into(),
    })?;
    let resolved = resolve(store, selection, max_devices).await?;
    let mut hardware_ids = std::collections::BTreeSet::new();
    for (member, hardware_id) in &resolved {
        if hardware_id.is_empty() {
            return Err(Error::Config {
                reason: format!(
                    "device {:?} has no hardware id: set it (medsec fleet device update \
                     --hardware-id) or leave the device out",
                    member.device
                ),
            });
        }
        hardware_ids.insert(hardware_id.clone());
    }
    let hardware_ids: Vec<String> = hardware_ids.into_iter().collect();
    let (image, release) = (image.clone(), spec.release.clone());
    tokio::task::spawn_blocking(move || check_release(&image, &release, &hardware_ids))
        .await
        .map_err(|e| Error::Config {
            reason: format!("image repository lookup failed: {e}"),
        })??;
    let members: Vec<Member> = resolved.into_iter().map(|(m, _)| m).collect();
    let campaign = Campaign::plan(spec, &members).map_err(campaign_error)?;
    Ok((campaign, members))
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

/// Fails the devices of running or paused campaigns that were offered a release and did not
/// report within the campaign's `report_timeout_ms` (which may halt a campaign). Returns, for
/// each campaign changed, its id, how many devices timed out, and its status afterwards.
pub async fn expire_reports<S: Store>(
    store: &S,
    now_ms: i64,
) -> Result<Vec<(String, usize, String)>, Error> {
    let mut changed = Vec::new();
    for row in store.campaigns().await? {
        if !matches!(row.status.as_str(), "running" | "paused") {
            continue;
        }
        let c = load(&row)?;
        let timeout = c.spec().report_timeout_ms;
        let late = |c: &Campaign| {
            c.devices()
                .filter(|(_, _, s)| {
                    matches!(s, medsec_campaign::DeviceState::Offered { at_ms }
                        if now_ms.saturating_sub(*at_ms) > timeout)
                })
                .count()
        };
        let n = late(&c);
        if n == 0 {
            continue;
        }
        let after = change(store, &row.id, now_ms, |c| {
            c.tick(now_ms);
            Ok(())
        })
        .await?;
        changed.push((row.id, n, after.status().name().to_owned()));
    }
    Ok(changed)
}

/// Takes a decommissioned device out of every unfinished campaign it is in, so that it can
/// neither fail a wave (it can no longer report) nor hold one open. Returns the campaigns it
/// was withdrawn from.
pub async fn withdraw_device<S: Store>(
    store: &S,
    device: &str,
    reason: &str,
    now_ms: i64,
) -> Result<Vec<String>, Error> {
    let mut withdrawn = Vec::new();
    for name in store.device_campaigns(device).await? {
        let row = store.campaign(&name).await?;
        if matches!(row.status.as_str(), "completed" | "aborted") {
            continue;
        }
        let unfinished = load(&row)?.device(device).is_some_and(|(_, s)| {
            !matches!(
                s,
                medsec_campaign::DeviceState::Succeeded { .. }
                    | medsec_campaign::DeviceState::Failed { .. }
                    | medsec_campaign::DeviceState::Withdrawn { .. }
            )
        });
        if !unfinished {
            continue;
        }
        change(store, &name, now_ms, |c| {
            c.withdraw(device, reason, now_ms);
            Ok(())
        })
        .await?;
        withdrawn.push(name);
    }
    Ok(withdrawn)
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
    use medsec_store::CampaignRow;
    use medsec_store::prelude::*;

    use super::*;

    #[tokio::test]
    async fn devices_that_never_report_fail_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = medsec_store::AnyStore::open(&url, 1).await.unwrap();
        let members: Vec<Member> = ["d1", "d2"]
            .iter()
            .map(|d| Member {
                device: (*d).into(),
                site: "s".into(),
            })
            .collect();
        for m in &members {
            store.register_device(&m.device, "pump", 0).await.unwrap();
        }
        let mut spec = Spec::new(
            "t",
            medsec_campaign::Release {
                version: "1".into(),
                release_counter: 1,
                target: "t.img".into(),
            },
        );
        spec.canary = medsec_campaign::WaveSize::Count(2);
        spec.report_timeout_ms = 1000;
        spec.max_failure_rate = 0.6;
        let mut c = Campaign::plan(spec, &members).unwrap();
        c.start(0).unwrap();
        c.offer("d1", false, 0).unwrap();
        let row = CampaignRow {
            id: "t".into(),
            status: c.status().name().into(),
            state: to_json(&c).unwrap(),
            version: 1,
            created_by: "test".into(),
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        store
            .create_campaign(&row, &["d1".into(), "d2".into()])
            .await
            .unwrap();
        // Within the timeout nothing changes and nothing is written.
        assert!(expire_reports(&store, 1000).await.unwrap().is_empty());
        assert_eq!(store.campaign("t").await.unwrap().version, 1);
        // After it, the silent device fails (1 of 2 is within the 60 % limit).
        let changed = expire_reports(&store, 1001).await.unwrap();
        assert_eq!(changed, [("t".to_owned(), 1, "running".to_owned())]);
        let c = load(&store.campaign("t").await.unwrap()).unwrap();
        assert!(matches!(
            c.device("d1"),
            Some((_, medsec_campaign::DeviceState::Failed { .. }))
        ));
        assert!(matches!(
            c.device("d2"),
            Some((_, medsec_campaign::DeviceState::Waiting))
        ));
        assert!(expire_reports(&store, 5000).await.unwrap().is_empty());
    }

    #[test]
    fn names_are_checked() {
        check_name("fix-1.2_b").unwrap();
        for bad in ["", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}

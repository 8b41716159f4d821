//! The inventory: what medsec knows about each device beyond what it reports. Here, the
//! operator-set fields of a device (model, hardware id, site, groups), checked once for the HTTP
//! API and the CLI, then applied as a merge (fields left out keep their value); in
//! [`records`], the model profiles and vendor records no device reports.

pub mod records;

use medsec_store::{Device, Inventory, Store};
use serde::Deserialize;

use crate::Error;

/// Longest model, hardware id, site or group name, in bytes.
pub const MAX_FIELD_BYTES: usize = 128;
/// Most groups a device can be in.
pub const MAX_GROUPS: usize = 32;

/// A change to a device's inventory: `None` keeps the stored value.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryPatch {
    /// New model.
    pub model: Option<String>,
    /// New hardware id (the id firmware targets must name to be installable).
    pub hardware_id: Option<String>,
    /// New site.
    pub site: Option<String>,
    /// New set of groups (replaces the old set; `[]` removes the device from all groups).
    pub groups: Option<Vec<String>>,
}

impl InventoryPatch {
    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.model.is_none()
            && self.hardware_id.is_none()
            && self.site.is_none()
            && self.groups.is_none()
    }

    /// Refuses values that would be unreadable in listings or ambiguous in selections: control
    /// characters, surrounding spaces, over-long names, empty model or group names, too many
    /// groups. Site and hardware id may be empty (unset).
    pub fn check(&self) -> Result<(), Error> {
        let field = |name: &str, value: &str, may_be_empty: bool| -> Result<(), Error> {
            let bad = |why: &str| {
                Err(Error::Config {
                    reason: format!("inventory {name} {value:?} {why}"),
                })
            };
            if value.is_empty() {
                return if may_be_empty {
                    Ok(())
                } else {
                    bad("is empty")
                };
            }
            if value.len() > MAX_FIELD_BYTES {
                return bad(&format!("is longer than {MAX_FIELD_BYTES} bytes"));
            }
            if value.chars().any(char::is_control) {
                return bad("contains a control character");
            }
            if value.trim() != value {
                return bad("starts or ends with white space");
            }
            Ok(())
        };
        if let Some(v) = &self.model {
            field("model", v, false)?;
        }
        if let Some(v) = &self.hardware_id {
            field("hardware_id", v, true)?;
        }
        if let Some(v) = &self.site {
            field("site", v, true)?;
        }
        if let Some(groups) = &self.groups {
            if groups.len() > MAX_GROUPS {
                return Err(Error::Config {
                    reason: format!(
                        "inventory names {} groups; at most {MAX_GROUPS}",
                        groups.len()
                    ),
                });
            }
            for g in groups {
                field("group", g, false)?;
            }
        }
        Ok(())
    }

    /// `device`'s inventory with this patch applied; groups sorted, each once.
    pub fn apply_to(&self, device: &Device) -> Inventory {
        let mut groups = self.groups.clone().unwrap_or_else(|| device.groups.clone());
        groups.sort();
        groups.dedup();
        Inventory {
            model: self.model.clone().unwrap_or_else(|| device.model.clone()),
            hardware_id: self
                .hardware_id
                .clone()
                .unwrap_or_else(|| device.hardware_id.clone()),
            site: self.site.clone().unwrap_or_else(|| device.site.clone()),
            groups,
        }
    }

    /// A short account of what changes, for the audit log.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = &self.model {
            parts.push(format!("model={v:?}"));
        }
        if let Some(v) = &self.hardware_id {
            parts.push(format!("hardware_id={v:?}"));
        }
        if let Some(v) = &self.site {
            parts.push(format!("site={v:?}"));
        }
        if let Some(v) = &self.groups {
            parts.push(format!("groups={v:?}"));
        }
        parts.join(" ")
    }
}

/// Checks `patch`, applies it to device `id` and returns the device as stored afterwards.
/// Two concurrent patches of one device each apply whole; the later one wins field by field it
/// names, on the value it read.
pub async fn update<S: Store>(
    store: &S,
    id: &str,
    patch: &InventoryPatch,
) -> Result<Device, Error> {
    patch.check()?;
    let device = store.device(id).await?;
    if !patch.is_empty() {
        store
            .set_device_inventory(id, &patch.apply_to(&device))
            .await?;
    }
    Ok(store.device(id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device {
            id: "pump-1".into(),
            model: "pump".into(),
            state: "registered".into(),
            quarantined: false,
            status: "{}".into(),
            created_at_ms: 0,
            last_seen_ms: None,
            hardware_id: "hw-1".into(),
            site: "north".into(),
            groups: vec!["icu".into()],
            installed_version: String::new(),
            release_counter: 0,
        }
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let p = InventoryPatch {
            site: Some("south".into()),
            ..InventoryPatch::default()
        };
        let inv = p.apply_to(&device());
        assert_eq!(
            (
                inv.model.as_str(),
                inv.hardware_id.as_str(),
                inv.site.as_str()
            ),
            ("pump", "hw-1", "south")
        );
        assert_eq!(inv.groups, ["icu"]);
        let p = InventoryPatch {
            groups: Some(vec!["b".into(), "a".into(), "b".into()]),
            ..InventoryPatch::default()
        };
        assert_eq!(p.apply_to(&device()).groups, ["a", "b"]);
    }

    #[test]
    fn bad_values_are_refused_and_named() {
        let cases: [(InventoryPatch, &str); 6] = [
            (
                InventoryPatch {
                    model: Some(String::new()),
                    ..InventoryPatch::default()
                },
                "model \"\" is empty",
            ),
            (
                InventoryPatch {
                    site: Some("a\nb".into()),
                    ..InventoryPatch::default()
                },
                "control character",
            ),
            (
                InventoryPatch {
                    hardware_id: Some(" hw".into()),
                    ..InventoryPatch::default()
                },
                "white space",
            ),
            (
                InventoryPatch {
                    site: Some("x".repeat(MAX_FIELD_BYTES + 1)),
                    ..InventoryPatch::default()
                },
                "longer than 128 bytes",
            ),
            (
                InventoryPatch {
                    groups: Some(vec![String::new()]),
                    ..InventoryPatch::default()
                },
                "group \"\" is empty",
            ),
            (
                InventoryPatch {
                    groups: Some((0..=MAX_GROUPS).map(|i| i.to_string()).collect()),
                    ..InventoryPatch::default()
                },
                "at most 32",
            ),
        ];
        for (patch, want) in cases {
            let err = patch.check().unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should say {want:?}");
        }
        // Empty site and hardware id mean "unset" and are fine.
        InventoryPatch {
            site: Some(String::new()),
            hardware_id: Some(String::new()),
            ..InventoryPatch::default()
        }
        .check()
        .unwrap();
    }
}

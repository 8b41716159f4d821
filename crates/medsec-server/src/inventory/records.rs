//! The inventory's records that no device reports ([`medsec_risk::inventory`]): model
//! profiles (vendor, clinical class, network reach, vendor support, MDS2 answers) and the
//! vendor registry (security documents received, contract security terms): stored and checked
//! through [`put`], read back as a [`Registry`] with each model's support state. The operator
//! API (`api/inventory.rs`, `/api/v1/inventory/…`) and the CLI (`medsec inventory
//! model|vendor|support`) both go through them.

use std::collections::BTreeMap;

use medsec_risk::inventory::{self, ModelProfile, SupportState, Vendor};
use medsec_store::{Device, DeviceQuery, InventoryKind, Store};
use serde::Serialize;

use crate::Error;

/// Every model profile and vendor record, parsed.
#[derive(Debug, Default)]
pub struct Registry {
    /// Profiles by model name.
    pub models: BTreeMap<String, ModelProfile>,
    /// Records by vendor name.
    pub vendors: BTreeMap<String, Vendor>,
}

impl Registry {
    /// Reads every record. They were checked on the way in; one that no longer reads is
    /// logged and left out.
    pub async fn read(store: &impl Store) -> Result<Self, Error> {
        let mut out = Self::default();
        for (name, body) in store.inventory_records(InventoryKind::Model).await? {
            match ModelProfile::parse(body.as_bytes()) {
                Ok(p) => {
                    out.models.insert(name, p);
                }
                Err(e) => {
                    tracing::warn!(model = %name, error = %e, "a stored model profile no longer reads")
                }
            }
        }
        for (name, body) in store.inventory_records(InventoryKind::Vendor).await? {
            match Vendor::parse(body.as_bytes()) {
                Ok(v) => {
                    out.vendors.insert(name, v);
                }
                Err(e) => {
                    tracing::warn!(vendor = %name, error = %e, "a stored vendor record no longer reads")
                }
            }
        }
        Ok(out)
    }

    /// The support state of a model at `now_ms` (none without a profile).
    pub fn support(&self, model: &str, now_ms: i64) -> Option<SupportState> {
        let profile = self.models.get(model)?;
        Some(inventory::support(
            profile,
            self.vendors.get(&profile.vendor),
            inventory::day_of(now_ms),
        ))
    }
}

/// Which record `put` stores.
#[derive(Debug, Clone, Copy)]
pub enum Record {
    /// A model profile.
    Model,
    /// A vendor record.
    Vendor,
}

/// Checks a record and stores it under `name`, replacing an earlier one. Returns the record
/// in its stored form.
pub async fn put(
    store: &impl Store,
    record: Record,
    name: &str,
    body: &[u8],
    now_ms: i64,
) -> Result<String, Error> {
    let bad = |reason: String| Error::Config { reason };
    crate::inventory::InventoryPatch {
        model: Some(name.to_owned()),
        ..Default::default()
    }
    .check()
    .map_err(|e| bad(e.to_string().replacen("inventory model", "name", 1)))?;
    let (kind, text) = match record {
        Record::Model => (
            InventoryKind::Model,
            serde_json::to_string(&ModelProfile::parse(body).map_err(|e| bad(e.to_string()))?),
        ),
        Record::Vendor => (
            InventoryKind::Vendor,
            serde_json::to_string(&Vendor::parse(body).map_err(|e| bad(e.to_string()))?),
        ),
    };
    let text = text.map_err(|e| bad(e.to_string()))?;
    store
        .put_inventory_record(kind, name, &text, now_ms)
        .await?;
    Ok(text)
}

/// One device in the support listing.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceSupport {
    /// The device.
    pub device: String,
    /// Its model.
    pub model: String,
    /// Its site.
    pub site: String,
    /// Its model's support state (none: the model has no profile).
    pub support: Option<SupportState>,
}

/// The fleet's support listing.
#[derive(Debug, Clone, Serialize)]
pub struct SupportReport {
    /// The day it is about.
    pub date: String,
    /// Devices whose vendor no longer ships updates: replace them.
    pub replace: Vec<DeviceSupport>,
    /// Devices whose support ends within [`inventory::ENDING_SOON_DAYS`].
    pub ending_soon: Vec<DeviceSupport>,
    /// Devices whose model has no profile: their support is unknown.
    pub unknown: Vec<DeviceSupport>,
    /// Devices that are supported.
    pub supported: usize,
}

/// Every device, in id order.
pub async fn all_devices(store: &impl Store) -> Result<Vec<Device>, Error> {
    devices_matching(store, DeviceQuery::default()).await
}

/// Every device `query`'s filters select, in id order, read a page of 1000 at a time (its
/// `after` and `limit` are set here).
pub async fn devices_matching(
    store: &impl Store,
    mut query: DeviceQuery,
) -> Result<Vec<Device>, Error> {
    query.after = None;
    query.limit = 1000;
    let mut all = Vec::new();
    loop {
        let page = store.devices(&query).await?;
        let full = page.len() == 1000;
        query.after = page.last().map(|d| d.id.clone());
        all.extend(page);
        if !full {
            return Ok(all);
        }
    }
}

impl Registry {
    /// Sorts `devices` by the support of their models at `now_ms`.
    pub fn support_report(&self, devices: &[Device], now_ms: i64) -> SupportReport {
        let mut out = SupportReport {
            date: inventory::format_date(inventory::day_of(now_ms)),
            replace: Vec::new(),
            ending_soon: Vec::new(),
            unknown: Vec::new(),
            supported: 0,
        };
        for d in devices {
            let support = self.support(&d.model, now_ms);
            let entry = |support| DeviceSupport {
                device: d.id.clone(),
                model: d.model.clone(),
                site: d.site.clone(),
                support,
            };
            match &support {
                None => out.unknown.push(entry(None)),
                Some(s) if s.replace => out.replace.push(entry(support)),
                Some(s)
                    if s.days_left
                        .is_some_and(|d| d <= inventory::ENDING_SOON_DAYS) =>
                {
                    out.ending_soon.push(entry(support))
                }
                Some(_) => out.supported += 1,
            }
        }
        out
    }
}

impl Registry {
    /// Per model of `vendor`, the expected documents (SBOM, MDS2, disclosure policy) not
    /// received; all of them when the registry has no record of the vendor.
    pub fn missing_documents(&self, vendor: &str) -> BTreeMap<String, Vec<String>> {
        let record = self.vendors.get(vendor);
        self.models
            .iter()
            .filter(|(_, p)| p.vendor == vendor)
            .map(|(model, _)| {
                let kinds = record.map_or_else(
                    || inventory::DocumentKind::EXPECTED.to_vec(),
                    |r| r.missing_documents(model),
                );
                (
                    model.clone(),
                    kinds.into_iter().map(|k| k.name().to_owned()).collect(),
                )
            })
            .collect()
    }

    /// Each vendor with its record and, per model of it, the expected documents not received.
    /// A vendor that models name but the registry lacks is listed with no record.
    pub fn vendor_view(&self) -> Vec<serde_json::Value> {
        let mut names: Vec<&String> = self.vendors.keys().collect();
        for p in self.models.values() {
            if !names.contains(&&p.vendor) {
                names.push(&p.vendor);
            }
        }
        names.sort();
        names
            .into_iter()
            .map(|name| {
                serde_json::json!({
                    "vendor": name, "record": self.vendors.get(name),
                    "missing_documents": self.missing_documents(name),
                })
            })
            .collect()
    }
}

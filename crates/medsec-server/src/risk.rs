//! Risk in the server, the service side: the release SBOMs, advisories and VEX documents the
//! store holds, parsed once per replica ([`RiskCache`]) into the matching database, the VEX
//! statements and the release index ([`medsec_risk`]). Documents are stored as received (after
//! the checks), and each replica reloads when the store's risk generation (counts and import
//! times) changes. The routes are in `api/risk.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use medsec_risk::advisory;
use medsec_risk::fleet::Inventory;
use medsec_risk::matching::Database;
use medsec_risk::sbom::Sbom;
use medsec_risk::vex::Statement;
use medsec_store::prelude::*;
use medsec_store::{AnyStore, ReleaseSbomRow};

/// A release as loaded: its row and its parsed SBOM.
pub(crate) struct Release {
    pub(crate) row: ReleaseSbomRow,
    pub(crate) sbom: Sbom,
}

/// What a replica has parsed, and the generation it was parsed at.
pub(crate) struct Loaded {
    generation: (i64, i64),
    pub(crate) db: Database,
    pub(crate) vex: Vec<Statement>,
    /// By (hardware id, version).
    pub(crate) releases: BTreeMap<(String, String), Release>,
    /// Index into `releases` order, for the affected-devices query.
    pub(crate) inventory: Inventory,
    pub(crate) keys: Vec<(String, String)>,
}

/// Parses what the store holds. Everything was checked on the way in (leniently, as
/// uploads are read); a document that no longer reads (a newer medsec with stricter checks)
/// is logged and noted as unread, so no component is reported clean until it is fixed.
pub(crate) fn parse_all(
    generation: (i64, i64),
    names: medsec_risk::names::Names,
    advisories: &[(String, String)],
    vex_docs: &[String],
    sboms: Vec<ReleaseSbomRow>,
) -> Loaded {
    let mut db = Database::new();
    db.set_names(names.clone());
    for (identity, body) in advisories {
        match advisory::read(body.as_bytes(), false) {
            Ok(read) => {
                db.import_read(read);
            }
            Err(e) => {
                tracing::warn!(error = %e, identity = %identity, "a stored advisory no longer reads");
                db.note_unread(identity, e.to_string());
            }
        }
    }
    let mut vex = Vec::new();
    for body in vex_docs {
        match medsec_risk::vex::parse(body.as_bytes()) {
            Ok((_, list)) => vex.extend(list),
            Err(e) => tracing::warn!(error = %e, "a stored VEX document no longer reads"),
        }
    }
    let mut releases: BTreeMap<(String, String), Release> = BTreeMap::new();
    for row in sboms {
        let key = (row.hardware_id.clone(), row.version.clone());
        // Two targets for one hardware id and version: the newer upload counts, as in
        // `Store::release_sbom`.
        if releases
            .get(&key)
            .is_some_and(|r| r.row.uploaded_at_ms > row.uploaded_at_ms)
        {
            continue;
        }
        match Sbom::parse(row.body.as_bytes()) {
            Ok(sbom) => {
                releases.insert(key, Release { row, sbom });
            }
            Err(e) => {
                tracing::warn!(error = %e, target = %row.target, "a stored SBOM no longer reads")
            }
        }
    }
    let mut inventory = Inventory::with_names(names);
    let mut keys = Vec::new();
    for (key, r) in &releases {
        inventory.add_release(&keys.len().to_string(), &r.sbom.components);
        keys.push(key.clone());
    }
    Loaded {
        generation,
        db,
        vex,
        releases,
        inventory,
        keys,
    }
}

/// The parsed risk data of this replica.
#[derive(Default)]
pub struct RiskCache {
    loaded: tokio::sync::Mutex<Option<Arc<Loaded>>>,
    names: medsec_risk::names::Names,
}

impl RiskCache {
    /// An empty cache comparing vendor names with `names`.
    pub(crate) fn new(names: medsec_risk::names::Names) -> Self {
        Self {
            loaded: tokio::sync::Mutex::new(None),
            names,
        }
    }

    /// What the store holds now, parsed: the cached parse while the store's risk generation
    /// is unchanged.
    pub(crate) async fn get(&self, store: &AnyStore) -> Result<Arc<Loaded>, crate::Error> {
        let generation = store.risk_generation().await?;
        let mut slot = self.loaded.lock().await;
        if let Some(l) = slot.as_ref()
            && l.generation == generation
        {
            return Ok(l.clone());
        }
        let advisories = store.advisory_docs().await?;
        let names = self.names.clone();
        let vex_docs = store.vex_docs().await?;
        let sboms = store.release_sboms().await?;
        // Parsing (schemas, ranges) is CPU work: off the async workers.
        let loaded = tokio::task::spawn_blocking(move || {
            Arc::new(parse_all(generation, names, &advisories, &vex_docs, sboms))
        })
        .await
        .map_err(|e| crate::Error::Internal {
            reason: format!("loading the risk data failed: {e}"),
        })?;
        *slot = Some(loaded.clone());
        Ok(loaded)
    }
}

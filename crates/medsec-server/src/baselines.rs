//! Learned baselines in the server: trained per device model from stored telemetry on an
//! operator's request, signed and versioned in the store, and scored on every batch at
//! ingestion ([`medsec_defender::learned`]).
//!
//! - [`Baselines::train`] learns a new version from the model's telemetry since `since_ms`
//!   (default: the last hour), leaving out batches that raised an alert, with each device's
//!   share capped: the class's baselines, each device's own, and the class's isolation forest
//!   over flows. The routes that train and show one are in `api/baselines.rs`.
//! - The baseline's JSON is signed with the server's log key (domain-separated). A replica
//!   loads the newest version, verifies it, and keeps it for `defender_baseline_reload_secs`;
//!   then it reloads it only if a newer version exists. One that does not verify is not
//!   scored (and logged): a baseline edited in the database cannot silence the Defender, nor
//!   make it raise alerts of the editor's choosing.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use medsec_crypto::KeySource;
use medsec_defender::learned::{ClassBaseline, DEFAULT_FOREST_TREES, Trainer};
use medsec_defender::telemetry::Batch;
use medsec_store::prelude::*;
use medsec_store::{AnyStore, BaselineRow, DeviceQuery};
use serde::Deserialize;

use crate::state::AppState;

/// What is signed: a domain tag, then the baseline's JSON.
const DOMAIN: &[u8] = b"medsec-defender-baseline-v1\n";

/// Most batches read per device when training (the newest).
const BATCHES_PER_DEVICE: u32 = 1_000;

type Loaded = Option<(i64, Arc<ClassBaseline>)>;

/// The signing key and each model's loaded baseline.
pub struct Baselines {
    key: Arc<dyn KeySource>,
    /// How long a loaded baseline is kept before the store is asked for a newer version
    /// (`defender_baseline_reload_secs`).
    reload: Duration,
    cache: Mutex<HashMap<String, (Instant, Loaded)>>,
}

fn message(body: &str) -> Vec<u8> {
    [DOMAIN, body.as_bytes()].concat()
}

impl Baselines {
    /// Signs with `key` (the server's log key); looks for a newer version every `reload`.
    pub fn new(key: Arc<dyn KeySource>, reload: Duration) -> Self {
        Self {
            key,
            reload,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The baseline a stored row holds, if its signature verifies under the log key.
    pub(crate) fn verify(&self, row: &BaselineRow) -> Result<ClassBaseline, String> {
        let signature =
            hex::decode(&row.signature).map_err(|e| format!("the signature is not hex: {e}"))?;
        self.key
            .public_key()
            .verify(&message(&row.body), &signature)
            .map_err(|e| format!("the signature does not verify: {e}"))?;
        serde_json::from_str(&row.body).map_err(|e| format!("the body does not parse: {e}"))
    }

    /// The baseline in force for `model` (version and model), from the cache or the store.
    ///
    /// After `reload` only the newest version number is read; the body (which holds every
    /// device's own baseline, megabytes for a large class) is read and verified again only
    /// when a newer version exists.
    pub(crate) async fn current(&self, state: &AppState, model: &str) -> Loaded {
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|cache| cache.get(model).cloned());
        if let Some((at, loaded)) = &cached {
            if at.elapsed() < self.reload {
                return loaded.clone();
            }
            if let Some((version, _)) = loaded
                && let Ok(latest) = state.store.latest_baseline_version(model).await
                && latest == Some(*version)
            {
                if let Ok(mut cache) = self.cache.lock() {
                    cache.insert(model.to_owned(), (Instant::now(), loaded.clone()));
                }
                return loaded.clone();
            }
        }
        let loaded = match state.store.latest_baseline(model).await {
            Ok(Some(row)) => match self.verify(&row) {
                Ok(b) => Some((row.version, Arc::new(b))),
                Err(e) => {
                    tracing::error!(model, version = row.version, error = %e,
                        "stored baseline refused: not scored until a new one is trained");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::error!(model, error = %e, "reading the baseline");
                return None;
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(model.to_owned(), (Instant::now(), loaded.clone()));
        }
        loaded
    }

    fn forget(&self, model: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(model);
        }
    }
}

/// The body of a training request (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrainRequest {
    /// Telemetry received at or after this time (Unix ms); default: an hour ago.
    since_ms: Option<i64>,
    /// Most rows (flows, or readings of one metric) a device contributes (default 5,000).
    max_rows_per_device: Option<usize>,
    /// Trees in the class's isolation forest (default 100; 0 for none; at most
    /// [`MAX_FOREST_TREES`]).
    forest_trees: Option<usize>,
}

/// The most trees a forest may have: each costs a walk per flow at ingestion.
pub const MAX_FOREST_TREES: usize = 500;

/// A model name as baselines are stored under: 1 to 64 of A-Z a-z 0-9 . _ -.
pub(crate) fn check_model(model: &str) -> Result<(), crate::Error> {
    if model.is_empty()
        || model.len() > 64
        || !model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(crate::Error::Config {
            reason: format!("model {model:?} is not allowed: use 1 to 64 of A-Z a-z 0-9 . _ -"),
        });
    }
    Ok(())
}

/// A baseline just trained, signed and stored.
pub(crate) struct Trained {
    /// Its version.
    pub version: i64,
    /// What was learned.
    pub baseline: ClassBaseline,
    /// Trees in its forest.
    pub trees: usize,
    /// The telemetry window it was learned from (Unix ms).
    pub since: i64,
    /// Batches left out because they raised an alert.
    pub skipped: usize,
}

impl Baselines {
    /// Trains the next version of `model`'s baseline from its devices' stored telemetry since
    /// `req.since_ms` (default: the hour before `now`), leaving out batches that raised an
    /// alert, then signs and stores it. Refused input (a bad model name, too many trees, too
    /// little telemetry) is a `Config` error naming the problem.
    pub(crate) async fn train(
        &self,
        store: &AnyStore,
        model: &str,
        req: &TrainRequest,
        by: &str,
        now: i64,
    ) -> Result<Trained, crate::Error> {
        check_model(model)?;
        let trees = req.forest_trees.unwrap_or(DEFAULT_FOREST_TREES);
        if trees > MAX_FOREST_TREES {
            return Err(crate::Error::Config {
                reason: format!("forest_trees {trees} is over the limit of {MAX_FOREST_TREES}"),
            });
        }
        let since = req.since_ms.unwrap_or(now - 3_600_000);
        let version = store
            .latest_baseline_version(model)
            .await?
            .map_or(1, |v| v + 1);
        // Seeded by the version: the same data and version grow the same forest.
        let mut trainer = Trainer::new(req.max_rows_per_device.unwrap_or(5_000))
            .with_forest(trees, u64::try_from(version).unwrap_or(0));
        let (mut after, mut skipped) = (None, 0usize);
        loop {
            let page = store
                .devices(&DeviceQuery {
                    after: after.clone(),
                    limit: 1_000,
                    model: Some(model.to_owned()),
                    ..DeviceQuery::default()
                })
                .await?;
            for d in &page {
                // Traffic that already raised an alert is not normal: it is not learned.
                // Every batch that raised an alert, counted into an aggregate or suppressed
                // included: an attacker repeating an attack cannot teach it as normal.
                let alerted: BTreeSet<i64> = store
                    .alerted_sequences(&d.id, since)
                    .await?
                    .into_iter()
                    .collect();
                // Oldest first: the trainer holds out each device's latest flows to calibrate
                // the flow threshold on what is closest to the traffic that follows.
                for b in store
                    .telemetry(&d.id, since, BATCHES_PER_DEVICE)
                    .await?
                    .into_iter()
                    .rev()
                {
                    if alerted.contains(&b.sequence) {
                        skipped += 1;
                        continue;
                    }
                    match Batch::parse(&b.body, usize::MAX) {
                        Ok(batch) => trainer.add(&d.id, &batch),
                        Err(e) => tracing::warn!(device = %d.id, sequence = b.sequence, error = %e,
                            "a stored batch no longer parses; left out of training"),
                    }
                }
            }
            match page.last() {
                Some(last) if page.len() == 1_000 => after = Some(last.id.clone()),
                _ => break,
            }
        }
        let baseline = trainer
            .fit(model, since, now)
            .map_err(|e| crate::Error::Config {
                reason: format!(
                    "not enough telemetry from {model} devices since {since} to learn a baseline: {e}"
                ),
            })?;
        let body = serde_json::to_string(&baseline).map_err(|e| crate::Error::Internal {
            reason: format!("baseline does not serialise: {e}"),
        })?;
        let signature = self.key.sign(&message(&body))?;
        store
            .add_baseline(&BaselineRow {
                model: model.to_owned(),
                version,
                created_at_ms: now,
                created_by: by.to_owned(),
                body,
                signature: hex::encode(&signature),
            })
            .await?;
        self.forget(model);
        Ok(Trained {
            version,
            baseline,
            trees,
            since,
            skipped,
        })
    }
}

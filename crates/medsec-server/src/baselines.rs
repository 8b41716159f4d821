//! Learned baselines in the server: trained per device model from stored telemetry on an
//! operator's request, signed and versioned in the store, and scored on every batch at
//! ingestion ([`medsec_defender::learned`]).
//!
//! - `POST /api/v1/defender/baselines/{model}` (`baseline.train`): trains a new version from
//!   the model's telemetry since `since_ms` (default: the last hour), leaving out batches that
//!   raised an alert, with each device's share capped: the class's baselines, each device's
//!   own, and the class's isolation forest over flows.
//! - `GET /api/v1/defender/baselines/{model}` (`incident.read`): the version in force, its
//!   signature, and whether it verifies.
//! - The baseline's JSON is signed with the server's log key (domain-separated). A replica
//!   loads the newest version, verifies it, and keeps it for `defender_baseline_reload_secs`;
//!   then it reloads it only if a newer version exists. One that does not verify is not
//!   scored (and logged): a baseline edited in the database cannot silence the Defender, nor
//!   make it raise alerts of the editor's choosing.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use medsec_crypto::{KeySource as _, SigningKey};
use medsec_defender::learned::{ClassBaseline, DEFAULT_FOREST_TREES, Trainer};
use medsec_defender::telemetry::Batch;
use medsec_store::{BaselineRow, DeviceQuery, Store as _};
use serde::Deserialize;

use crate::api::{ApiError, authorize, caller};
use crate::audit_log::event;
use crate::authz::Target;
use crate::state::{AppState, Conn, now_ms};

/// What is signed: a domain tag, then the baseline's JSON.
const DOMAIN: &[u8] = b"medsec-defender-baseline-v1\n";

/// Most batches read per device when training (the newest).
const BATCHES_PER_DEVICE: u32 = 1_000;

type Loaded = Option<(i64, Arc<ClassBaseline>)>;

/// The signing key and each model's loaded baseline.
pub struct Baselines {
    key: SigningKey,
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
    pub fn new(key: SigningKey, reload: Duration) -> Self {
        Self {
            key,
            reload,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn verify(&self, row: &BaselineRow) -> Result<ClassBaseline, String> {
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
struct TrainRequest {
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

fn check_model(model: &str) -> Result<(), ApiError> {
    if model.is_empty()
        || model.len() > 64
        || !model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(ApiError::BadRequest(format!(
            "model {model:?} is not allowed: use 1 to 64 of A-Z a-z 0-9 . _ -"
        )));
    }
    Ok(())
}

/// `POST /api/v1/defender/baselines/{model}`: trains, signs and stores the next version.
pub(crate) async fn train(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(model): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let who = caller(&state, &conn, &headers, "baseline.train", &Target::Fleet).await?;
    authorize(&state, &conn, &who, "baseline.train", &Target::Fleet).await?;
    check_model(&model)?;
    let req: TrainRequest = if body.is_empty() {
        TrainRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("baseline request: {e}")))?
    };
    let trees = req.forest_trees.unwrap_or(DEFAULT_FOREST_TREES);
    if trees > MAX_FOREST_TREES {
        return Err(ApiError::BadRequest(format!(
            "forest_trees {trees} is over the limit of {MAX_FOREST_TREES}"
        )));
    }
    let now = now_ms();
    let since = req.since_ms.unwrap_or(now - 3_600_000);
    let version = state
        .store
        .latest_baseline_version(&model)
        .await?
        .map_or(1, |v| v + 1);
    // Seeded by the version: the same data and version grow the same forest.
    let mut trainer = Trainer::new(req.max_rows_per_device.unwrap_or(5_000))
        .with_forest(trees, u64::try_from(version).unwrap_or(0));
    let (mut after, mut skipped) = (None, 0usize);
    loop {
        let page = state
            .store
            .devices(&DeviceQuery {
                after: after.clone(),
                limit: 1_000,
                model: Some(model.clone()),
                ..DeviceQuery::default()
            })
            .await?;
        for d in &page {
            // Traffic that already raised an alert is not normal: it is not learned.
            let alerted: BTreeSet<i64> = state
                .store
                .alerts(Some(&d.id), since, 100_000)
                .await?
                .iter()
                .map(|a| a.sequence)
                .collect();
            for b in state
                .store
                .telemetry(&d.id, since, BATCHES_PER_DEVICE)
                .await?
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
    let baseline = trainer.fit(&model, since, now).map_err(|e| {
        ApiError::BadRequest(format!(
            "not enough telemetry from {model} devices since {since} to learn a baseline: {e}"
        ))
    })?;
    let body = serde_json::to_string(&baseline)
        .map_err(|e| ApiError::Internal(format!("baseline does not serialise: {e}")))?;
    let signature = state
        .baselines
        .key
        .sign(&message(&body))
        .map_err(|e| ApiError::Internal(format!("signing the baseline: {e}")))?;
    let by = who.subject.label();
    state
        .store
        .add_baseline(&BaselineRow {
            model: model.clone(),
            version,
            created_at_ms: now,
            created_by: by.clone(),
            body,
            signature: hex::encode(&signature),
        })
        .await?;
    state.baselines.forget(&model);
    let metrics: Vec<&String> = baseline.metrics.keys().collect();
    let mut e = event(
        "defender",
        &by,
        "baseline.train",
        &format!("Model::{model:?}"),
        "info",
    );
    e.source = conn.addr.to_string();
    e.detail = format!(
        "v{version}: {} flows and metrics {metrics:?} from {} devices since {since} \
         ({skipped} alerted batches left out); {} devices with their own baseline; forest of \
         {} trees",
        baseline.flow_rows,
        baseline.devices,
        baseline.per_device.len(),
        baseline.forest.as_ref().map_or(0, |_| trees)
    );
    state.audit(e).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "model": model,
            "version": version,
            "devices": baseline.devices,
            "flow_rows": baseline.flow_rows,
            "metrics": metrics,
            "devices_with_own_baseline": baseline.per_device.len(),
            "forest": baseline.forest.as_ref().map(|f| serde_json::json!({
                "trees": trees,
                "cut": f.cut,
            })),
            "trained_from_ms": since,
            "trained_to_ms": now,
            "alerted_batches_left_out": skipped,
        })),
    )
        .into_response())
}

/// `GET /api/v1/defender/baselines/{model}`: the newest version, and whether it verifies.
pub(crate) async fn show(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(model): Path<String>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &conn, &headers, "incident.read", &Target::Fleet).await?;
    authorize(&state, &conn, &who, "incident.read", &Target::Fleet).await?;
    check_model(&model)?;
    let row = state
        .store
        .latest_baseline(&model)
        .await?
        .ok_or(ApiError::NotFound)?;
    let verified = state.baselines.verify(&row);
    Ok(Json(serde_json::json!({
        "model": row.model,
        "version": row.version,
        "created_at_ms": row.created_at_ms,
        "created_by": row.created_by,
        "signature": row.signature,
        "verified": verified.is_ok(),
        "problem": verified.as_ref().err(),
        "baseline": serde_json::from_str::<serde_json::Value>(&row.body).ok(),
    }))
    .into_response())
}

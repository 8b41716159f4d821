//! `GET /api/v1/releases` (`campaign.read`): the image repository's signed releases as a device
//! would verify them — each top-level target with its hardware ids, version and release counter,
//! its SBOM (signed digest, and whether it was uploaded), the devices that report running it,
//! and the release check: the open findings of its SBOM against the stored advisories and VEX,
//! and whether any blocks the release (critical, or known exploited, and not resolved by VEX —
//! `medsec release check`'s default rule).

use std::collections::BTreeMap;

use axum::Json;
use axum::response::{IntoResponse, Response};
use medsec_store::prelude::*;

use super::auth::Auth;
use super::error::ApiError;
use crate::authz::Target;

#[utoipa::path(
    get,
    path = "/api/v1/releases",
    tag = "campaigns",
    operation_id = "list_releases",
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 409, description = "No image repository is configured, or it does not verify.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// The image repository's releases, verified, with their SBOM, devices and release check.
pub(crate) async fn list_releases(auth: Auth) -> Result<Response, ApiError> {
    let _who = auth.authorize("campaign.read", &Target::Fleet).await?;
    let image = auth.state.director.image().ok_or_else(|| {
        ApiError::Conflict(
            "no image_repository is configured: there are no releases to list".into(),
        )
    })?;
    let targets = crate::director::top_level_targets(image)
        .await
        .map_err(|e| ApiError::Conflict(e.to_string()))?;
    let store = &auth.state.store;
    let loaded = auth.state.risk.get(store).await?;
    let index = loaded.db.index();
    let mut list = Vec::new();
    for (name, entry) in &targets {
        let medsec = entry.custom.as_ref().and_then(|c| c.get("medsec"));
        let field = |k: &str| medsec.and_then(|m| m.get(k)).cloned().unwrap_or_default();
        let version = field("version").as_str().unwrap_or_default().to_owned();
        let hardware_ids: Vec<String> = field("hardware_ids")
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|h| h.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut running = 0usize;
        let mut check = serde_json::Value::Null;
        for hw in &hardware_ids {
            running += store.devices_running(hw, &version).await?.len();
            if check.is_null()
                && let Some(release) = loaded.releases.get(&(hw.clone(), version.clone()))
            {
                let matches = super::risk::release_matches(&index, release, &loaded.vex);
                let findings: Vec<&medsec_risk::matching::Finding> =
                    matches.iter().flat_map(|m| &m.findings).collect();
                let blocking: Vec<&str> = findings
                    .iter()
                    .filter(|f| f.blocks(medsec_risk::gate::Threshold::Critical).is_some())
                    .map(|f| f.advisory.as_str())
                    .collect();
                let mut by_severity = BTreeMap::<&str, usize>::new();
                for f in findings.iter().filter(|f| f.open()) {
                    *by_severity
                        .entry(f.severity.unwrap_or("unscored"))
                        .or_default() += 1;
                }
                check = serde_json::json!({
                    "verdict": if blocking.is_empty() { "pass" } else { "blocked" },
                    "blocking": blocking,
                    "open_by_severity": by_severity,
                    "components": matches.len(),
                });
            }
        }
        list.push(serde_json::json!({
            "target": name,
            "length": entry.length,
            "sha256": entry.hashes.get("sha256"),
            "version": version,
            "release_counter": field("release_counter"),
            "hardware_ids": hardware_ids,
            "sbom_signed": field("sbom"),
            "devices_running": running,
            "check": if check.is_null() { serde_json::json!({"verdict": "no SBOM uploaded"}) } else { check },
        }));
    }
    Ok(Json(list).into_response())
}

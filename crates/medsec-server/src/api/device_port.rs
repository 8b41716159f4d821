//! The device port's routes, each described for its OpenAPI document
//! (`GET /api/v1/openapi/device.json` on the operator port, `medsec openapi --port device`).
//! The handlers are the ones the operator port shares or its own; these thin functions carry
//! the device port's descriptions (mutual TLS, its media types), and the router is built from
//! them, so the two cannot drift.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use utoipa::openapi::security::SecurityScheme;
use utoipa::{Modify, OpenApi};

use super::auth::{Auth, DevicePath};
use super::error::ApiError;
use crate::state::AppState;

/// The fleet CA chain, as EST's certs-only PKCS#7 (base64). No credential needed.
#[utoipa::path(
    get,
    path = "/.well-known/est/cacerts",
    tag = "est",
    operation_id = "est_cacerts",
    responses(
        (status = 200, description = "The fleet CA chain (RFC 7030 section 4.1).", body = String, content_type = "application/pkcs7-mime"),
        (status = 429, description = "Over the rate limit.", body = crate::api::openapi::ErrorSchema)
    ),
    security(())
)]
async fn cacerts(state: State<Arc<AppState>>) -> Result<Response, ApiError> {
    super::est::est_cacerts(state).await
}

/// First enrolment: a PKCS#10 request (base64) with a one-time enrolment token (Bearer, or
/// Basic with the token as password) or a manufacturer certificate (IDevID) on the connection.
/// `Medsec-Hardware-Id` states the device's hardware id, checked before the token is spent.
#[utoipa::path(
    post,
    path = "/.well-known/est/simpleenroll",
    tag = "est",
    operation_id = "est_simpleenroll",
    params(("Medsec-Hardware-Id" = Option<String>, Header, description = "The hardware id the device is built as.")),
    request_body(content = String, content_type = "application/pkcs10"),
    responses(
        (status = 200, description = "The device certificate and chain (certs-only PKCS#7, base64).", body = String, content_type = "application/pkcs7-mime"),
        (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema),
        (status = 401, description = "No enrolment credential, or one refused.", body = crate::api::openapi::ErrorSchema),
        (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema),
        (status = 409, description = "The key was certified before.", body = crate::api::openapi::ErrorSchema),
        (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema),
        (status = 415, description = "Not application/pkcs10.", body = crate::api::openapi::ErrorSchema),
        (status = 429, description = "Over the rate limit.", body = crate::api::openapi::ErrorSchema)
    ),
    security((), ("enrolment_token" = []))
)]
async fn simpleenroll(auth: Auth, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    super::est::est_simpleenroll(auth, headers, body).await
}

/// Renewal with a new key, over the device's current fleet certificate.
#[utoipa::path(
    post,
    path = "/.well-known/est/simplereenroll",
    tag = "est",
    operation_id = "est_simplereenroll",
    request_body(content = String, content_type = "application/pkcs10"),
    responses(
        (status = 200, description = "The new certificate and chain (certs-only PKCS#7, base64).", body = String, content_type = "application/pkcs7-mime"),
        (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema),
        (status = 401, description = "No fleet certificate, or a revoked one.", body = crate::api::openapi::ErrorSchema),
        (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema),
        (status = 409, description = "The key was certified before.", body = crate::api::openapi::ErrorSchema),
        (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema),
        (status = 415, description = "Not application/pkcs10.", body = crate::api::openapi::ErrorSchema),
        (status = 429, description = "Over the rate limit.", body = crate::api::openapi::ErrorSchema)
    ),
    security(("device_certificate" = []))
)]
async fn simplereenroll(auth: Auth, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    super::est::est_simplereenroll(auth, headers, body).await
}

/// The device's own record.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}",
    tag = "device",
    operation_id = "device_get",
    params(("id" = String, Path, description = "The device's id (its own).")),
    responses(
        (status = 200, description = "Its record.", body = serde_json::Value),
        (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema),
        (status = 401, description = "No fleet certificate, or a revoked one.", body = crate::api::openapi::ErrorSchema),
        (status = 403, description = "Not permitted by policy (audited): a device reads itself only.", body = crate::api::openapi::ErrorSchema),
        (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema),
        (status = 429, description = "Over the rate limit.", body = crate::api::openapi::ErrorSchema)
    ),
    security(("device_certificate" = []))
)]
async fn device(auth: Auth, id: DevicePath) -> Result<Response, ApiError> {
    super::devices::get_device(auth, id).await
}

/// Its status (a JSON object), stored as reported.
#[utoipa::path(
    put,
    path = "/api/v1/devices/{id}/status",
    tag = "device",
    operation_id = "device_put_status",
    params(("id" = String, Path, description = "The device's id (its own).")),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses(
        (status = 204, description = "Stored."),
        (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema),
        (status = 401, description = "No fleet certificate, or a revoked one.", body = crate::api::openapi::ErrorSchema),
        (status = 403, description = "Not permitted by policy (audited): quarantined, or not itself.", body = crate::api::openapi::ErrorSchema),
        (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema),
        (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema),
        (status = 429, description = "Over the rate limit.", body = crate::api::openapi::ErrorSchema)
    ),
    security(("device_certificate" = []))
)]
async fn status(auth: Auth, id: DevicePath, body: Bytes) -> Result<Response, ApiError> {
    super::devices::put_status(auth, id, body).await
}

/// A nonce for its next signed version report.
#[utoipa::path(
    post,
    path = "/api/v1/devices/{id}/report-nonce",
    tag = "device",
    operation_id = "device_report_nonce",
    params(("id" = String, Path, description = "The device's id (its own).")),
    responses(
        (status = 201, description = "`{\"nonce\", \"expires_at_ms\"}`.", body = serde_json::Value),
        (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema),
        (status = 401, description = "No fleet certificate, or a revoked one.", body = crate::api::openapi::ErrorSchema),
        (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema),
        (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema),
        (status = 429, description = "Over the rate limit.", body = crate::api::openapi::ErrorSchema)
    ),
    security(("device_certificate" = []))
)]
async fn report_nonce(auth: Auth, id: DevicePath) -> Result<Response, ApiError> {
    super::devices::report_nonce(auth, id).await
}

/// A version report signed by the key of the connection's certificate (server.md).
#[utoipa::path(
    put,
    path = "/api/v1/devices/{id}/version",
    tag = "device",
    operation_id = "device_put_version",
    params(("id" = String, Path, description = "The device's id (its own).")),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses(
        (status = 204, description = "Recorded."),
        (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema),
        (status = 401, description = "No fleet certificate, or a revoked one.", body = crate::api::openapi::ErrorSchema),
        (status = 403, description = "Not permitted by policy, or the signature or nonce refused (audited).", body = crate::api::openapi::ErrorSchema),
        (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema),
        (status = 409, description = "The nonce was used, expired or not this device's.", body = crate::api::openapi::ErrorSchema),
        (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema),
        (status = 429, description = "Over the rate limit.", body = crate::api::openapi::ErrorSchema)
    ),
    security(("device_certificate" = []))
)]
async fn version(auth: Auth, id: DevicePath, body: Bytes) -> Result<Response, ApiError> {
    super::devices::put_version(auth, id, body).await
}

/// A telemetry batch (defender.md), plain or gzip; stored before the answer.
#[utoipa::path(
    post,
    path = "/api/v1/devices/{id}/telemetry",
    tag = "device",
    operation_id = "device_post_telemetry",
    params(("id" = String, Path, description = "The device's id (its own).")),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses(
        (status = 200, description = "Stored (or a duplicate of a stored batch).", body = serde_json::Value),
        (status = 400, description = "The batch is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema),
        (status = 401, description = "No fleet certificate, or a revoked one.", body = crate::api::openapi::ErrorSchema),
        (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema),
        (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema),
        (status = 409, description = "A replay or a jump too far ahead; the body says the next number.", body = serde_json::Value),
        (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema),
        (status = 415, description = "Not JSON (or gzip-encoded JSON).", body = crate::api::openapi::ErrorSchema),
        (status = 429, description = "Over the rate limit.", body = crate::api::openapi::ErrorSchema)
    ),
    security(("device_certificate" = []))
)]
async fn telemetry(
    auth: Auth,
    headers: HeaderMap,
    id: DevicePath,
    body: Bytes,
) -> Result<Response, ApiError> {
    super::telemetry::post_telemetry(auth, headers, id, body).await
}

/// The director's metadata for the device (updates.md): `root.json`, `N.root.json`,
/// `timestamp.json` (the poll), `snapshot.json`, `targets.json`.
#[utoipa::path(
    get,
    path = "/director/{id}/{file}",
    tag = "updates",
    operation_id = "director_file",
    params(
        ("id" = String, Path, description = "The device's id (its own)."),
        ("file" = String, Path, description = "The metadata file.")
    ),
    responses(
        (status = 200, description = "Signed TUF metadata.", body = serde_json::Value),
        (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema),
        (status = 401, description = "No fleet certificate, or a revoked one.", body = crate::api::openapi::ErrorSchema),
        (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema),
        (status = 404, description = "No such file.", body = crate::api::openapi::ErrorSchema),
        (status = 429, description = "Over the rate limit.", body = crate::api::openapi::ErrorSchema)
    ),
    security(("device_certificate" = []))
)]
async fn director(
    auth: Auth,
    id: DevicePath,
    path: Path<(String, String)>,
) -> Result<Response, ApiError> {
    super::updates::director_file(auth, id, path).await
}

/// The published image repository (`/repo/metadata/…`, `/repo/targets/…`, with `Range`), a
/// wildcard route OpenAPI cannot describe; described in docs/updates.md.
pub(super) async fn image(
    auth: Auth,
    path: Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    super::updates::image_file(auth, path, request).await
}

/// The device port's security schemes.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "device_certificate",
            SecurityScheme::MutualTls {
                description: Some(
                    "A device certificate from the fleet CA (EST), checked against the CRL.".into(),
                ),
                extensions: None,
            },
        );
        components.add_security_scheme(
            "enrolment_token",
            SecurityScheme::Http(
                utoipa::openapi::security::HttpBuilder::new()
                    .scheme(utoipa::openapi::security::HttpAuthScheme::Bearer)
                    .description(Some("A one-time enrolment token (`medsec token create`)."))
                    .build(),
            ),
        );
    }
}

/// The device port's document frame.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "medsec device API",
        description = "The device port of `medsec server` (mutual TLS 1.3): EST enrolment, the device's own record, status, signed version reports, telemetry, and the director's per-device update metadata. Every request is authorised by Cedar and audited before it is answered.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    modifiers(&Security),
    components(schemas(crate::api::openapi::ErrorSchema))
)]
struct DeviceDoc;

/// The device port's routes with their descriptions.
pub(super) fn routes() -> utoipa_axum::router::OpenApiRouter<Arc<AppState>> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::with_openapi(DeviceDoc::openapi())
        .routes(routes!(cacerts))
        .routes(routes!(simpleenroll))
        .routes(routes!(simplereenroll))
        .routes(routes!(device))
        .routes(routes!(status))
        .routes(routes!(report_nonce))
        .routes(routes!(version))
        .routes(routes!(telemetry))
        .routes(routes!(director))
        .route("/repo/{*path}", axum::routing::get(image))
}

/// The device port's description, as JSON text.
pub fn document() -> String {
    routes()
        .split_for_parts()
        .1
        .to_pretty_json()
        .unwrap_or_default()
}

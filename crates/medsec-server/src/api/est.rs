//! EST (RFC 7030): the CA certificates, enrolment with a one-time token or a manufacturer
//! certificate, and re-enrolment with the device's own certificate.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use medsec_pki::DeviceId;
use medsec_store::DeviceKey;
use medsec_store::prelude::*;

use crate::audit_log::event;
use crate::authz::Target;
use crate::tokens;

use super::auth::{Auth, Caller, deny_event, device_id, device_subject};
use super::error::ApiError;
use super::guard::bearer;
use crate::state::{AppState, Peer, now_ms};

/// The base64 body of an EST answer, in lines of 64 characters ended by CRLF: RFC 7030 uses
/// the MIME `base64` transfer encoding, whose lines may not pass 76 characters (RFC 2045 6.8),
/// and strict decoders such as `openssl base64 -d` refuse one long line.
fn mime_base64(der: &[u8]) -> String {
    let text = STANDARD.encode(der);
    let mut out = String::with_capacity(text.len() + text.len() / 32 + 2);
    for line in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push_str("\r\n");
    }
    out
}

fn pkcs7_response(body: Bytes) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/pkcs7-mime; smime-type=certs-only",
            ),
            (
                header::HeaderName::from_static("content-transfer-encoding"),
                "base64",
            ),
        ],
        body,
    )
        .into_response()
}

fn pem_certs(pem: &str) -> Result<Vec<Vec<u8>>, ApiError> {
    use rustls_pki_types::pem::PemObject as _;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::Internal(format!("certificate PEM: {e}")))
}

pub(super) async fn est_cacerts(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    // The chain changes only when the CA is re-created, which needs a restart: build the answer
    // once.
    let body = state
        .cacerts
        .get_or_try_init(|| async {
            let path = state.ca.lock().await.chain_path();
            let pem = tokio::fs::read_to_string(&path)
                .await
                .map_err(|e| ApiError::Internal(format!("reading {}: {e}", path.display())))?;
            Ok::<_, ApiError>(Bytes::from(mime_base64(&medsec_crypto::pkcs7_certs_only(
                &pem_certs(&pem)?,
            ))))
        })
        .await?;
    Ok(pkcs7_response(body.clone()))
}

/// The request body: base64 of a DER PKCS#10 (whitespace allowed), returned as PEM.
fn est_csr(body: &[u8]) -> Result<String, ApiError> {
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let der = STANDARD.decode(compact).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be a base64 DER PKCS#10 request: {e}"
        ))
    })?;
    pem_rfc7468::encode_string("CERTIFICATE REQUEST", pem_rfc7468::LineEnding::LF, &der)
        .map_err(|e| ApiError::BadRequest(format!("request: {e}")))
}

/// Refuses a request whose subject or alternative names claim any identity but `device`.
fn check_claims(info: &medsec_pki::RequestInfo, device: &DeviceId) -> Result<(), String> {
    if let Some(cn) = info.common_names.iter().find(|cn| *cn != device.as_str()) {
        return Err(format!(
            "the request's subject claims {cn:?}, but the credential is for {:?}",
            device.as_str()
        ));
    }
    let own = format!("URI({})", device.uri());
    if let Some(name) = info.alt_names.iter().find(|n| **n != own) {
        return Err(format!(
            "the request asks for the name {name}, which the CA does not give to {:?}",
            device.as_str()
        ));
    }
    Ok(())
}

pub(super) async fn enrol(
    auth: &Auth,
    caller: &Caller,
    action: &str,
    device: &DeviceId,
    csr_pem: &str,
    info: &medsec_pki::RequestInfo,
) -> Result<Response, ApiError> {
    let (state, conn) = (&*auth.state, &auth.conn);
    let target = Target::Device(device.as_str().to_owned());
    auth.check(caller, action, &target).await?;
    let refuse = |detail: String| {
        let mut e = event(
            "enrolment",
            &caller.subject.label(),
            action,
            &target.label(),
            "deny",
        );
        e.source = conn.addr.to_string();
        e.detail = detail;
        e
    };
    if let Err(detail) = check_claims(info, device) {
        state.audit(refuse(detail.clone())).await?;
        return Err(ApiError::BadRequest(detail));
    }
    let days = state.config.device_cert_days;
    let not_after_ms = now_ms().saturating_add(days.saturating_mul(86_400_000));
    // The key is recorded after issuing, under a unique constraint: of two requests with one
    // key, only one certificate is handed out (the other is revoked unseen).
    let mut key = DeviceKey {
        spki_sha256: info.spki_sha256.to_vec(),
        device_id: device.as_str().to_owned(),
        serial: "(pending)".into(),
        not_after_ms,
        created_at_ms: now_ms(),
    };
    let (issued, pem) = {
        let mut ca = state.ca.lock().await;
        ca.reload_state()
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        match ca.issue(csr_pem, device, days) {
            Ok(done) => done,
            Err(e) => {
                state.audit(refuse(e.to_string())).await?;
                return Err(ApiError::BadRequest(e.to_string()));
            }
        }
    };
    key.serial = issued.serial.clone();
    if let Err(e) = state.store.add_device_key(&key).await {
        let detail = match e {
            medsec_store::Error::Conflict { .. } => {
                "this key was certified before: enrolment needs a new key pair".to_owned()
            }
            other => return Err(other.into()),
        };
        // The certificate was signed but is never handed out; revoke it so it cannot surface.
        let mut ca = state.ca.lock().await;
        if let Err(e) = ca.revoke(&issued.serial, medsec_pki::RevocationReason::Superseded) {
            tracing::error!(serial = %issued.serial, error = %e, "could not revoke a certificate that was never handed out");
        }
        drop(ca);
        state.audit(refuse(detail.clone())).await?;
        return Err(ApiError::Conflict(detail));
    }
    state
        .store
        .set_device_state(device.as_str(), "enrolled")
        .await?;
    // One live certificate per device: the new one supersedes every earlier one.
    let superseded = super::devices::revoke_live(
        state,
        device,
        medsec_pki::RevocationReason::Superseded,
        Some(&issued.serial),
    )
    .await?;
    // A new certificate starts a new telemetry numbering too: a cursor pushed out of reach
    // (by a batch from before jumps were refused) cannot outlive the device's re-enrolment.
    let cursor = state.store.reset_telemetry_cursor(device.as_str()).await?;
    let mut e = event(
        "issuance",
        &caller.subject.label(),
        action,
        &target.label(),
        "info",
    );
    e.source = conn.addr.to_string();
    e.detail = format!(
        "certificate {} valid until {}",
        issued.serial, issued.not_after
    );
    if !superseded.is_empty() {
        e.detail = format!(
            "{}; supersedes and revokes {}",
            e.detail,
            superseded.join(", ")
        );
    }
    if let Some(last) = cursor {
        e.detail = format!("{}; telemetry cursor reset (was {last})", e.detail);
    }
    state.audit(e).await?;
    Ok(pkcs7_response(Bytes::from(mime_base64(
        &medsec_crypto::pkcs7_certs_only(&pem_certs(&pem)?),
    ))))
}

/// Refuses a body that does not say it is a PKCS#10 request (RFC 7030 section 4.2.1:
/// `application/pkcs10`; parameters such as a charset are ignored).
fn check_media_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let media = given.map(|t| t.split(';').next().unwrap_or_default().trim());
    if media.is_some_and(|m| m.eq_ignore_ascii_case("application/pkcs10")) {
        return Ok(());
    }
    Err(ApiError::UnsupportedMediaType(format!(
        "an EST request's Content-Type is application/pkcs10 (RFC 7030 section 4.2.1), not {}",
        given.map_or_else(|| "none".to_owned(), |t| format!("{t:?}"))
    )))
}

/// Parses and verifies the request before any credential is spent.
pub(super) async fn parse_request(
    auth: &Auth,
    headers: &HeaderMap,
    action: &str,
    body: &[u8],
) -> Result<(String, medsec_pki::RequestInfo), ApiError> {
    let (state, conn) = (&*auth.state, &auth.conn);
    let checked = check_media_type(headers)
        .and_then(|()| est_csr(body))
        .and_then(|pem| {
            medsec_pki::inspect_request(&pem)
                .map(|info| (pem, info))
                .map_err(|e| ApiError::BadRequest(e.to_string()))
        });
    if let Err(ApiError::BadRequest(detail) | ApiError::UnsupportedMediaType(detail)) = &checked {
        let mut e = event("enrolment", "anonymous", action, "-", "deny");
        e.source = conn.addr.to_string();
        e.detail = detail.clone();
        state.audit(e).await?;
    }
    checked
}

fn basic_or_bearer_token(headers: &HeaderMap) -> Option<String> {
    if let Some(t) = bearer(headers) {
        return Some(t.to_owned());
    }
    // EST clients send HTTP Basic; the token is the password (RFC 7030 section 3.2.3).
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let decoded = STANDARD.decode(value.strip_prefix("Basic ")?.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_owned())
}

pub(super) async fn est_simpleenroll(
    auth: Auth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    const ACTION: &str = "est.enroll";
    let (pem, info) = parse_request(&auth, &headers, ACTION, &body).await?;
    let claimed_hardware = hardware_id_header(&headers)?;
    let (device, credential) = match (&auth.conn.peer, basic_or_bearer_token(&headers)) {
        (Peer::Manufacturer(claim), token) => {
            let device = manufacturer_enrolment(&auth, claim, token.as_deref()).await?;
            let response =
                enrol_checked(&auth, &device, "manufacturer-certificate", &pem, &info).await?;
            // The IDevID that now holds the id (shown with the device's identity bindings).
            auth.state
                .store
                .rebind_identity(device.as_str(), "idevid", &claim.fingerprint, now_ms())
                .await?;
            return Ok(response);
        }
        (Peer::Device(id), _) => {
            let mut e = deny_event(
                &auth.conn,
                &format!("Device::{:?}", id.as_str()),
                ACTION,
                &Target::Device(id.as_str().to_owned()),
                "an enrolled device renews with simplereenroll",
            );
            e.kind = "enrolment".into();
            auth.state.audit(e).await?;
            return Err(ApiError::BadRequest(
                "this device is enrolled: use /.well-known/est/simplereenroll".into(),
            ));
        }
        (_, Some(token)) => {
            match consume_checked(&auth, &token, claimed_hardware.as_deref()).await? {
                Ok(id) => (device_id(&id)?, "enrolment-token"),
                Err(medsec_store::Error::TokenRefused { reason }) => {
                    auth.state
                        .audit(deny_event(
                            &auth.conn,
                            "anonymous",
                            ACTION,
                            &Target::Fleet,
                            reason,
                        ))
                        .await?;
                    return Err(ApiError::Unauthenticated(format!(
                        "enrolment refused: {reason}"
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
        (_, None) => {
            auth.state
                .audit(deny_event(
                    &auth.conn,
                    "anonymous",
                    ACTION,
                    &Target::Fleet,
                    "no enrolment token or manufacturer certificate",
                ))
                .await?;
            return Err(ApiError::Unauthenticated(
                "enrolment needs a token (Authorization: Bearer, or Basic with the token as password) or a manufacturer certificate".into(),
            ));
        }
    };
    let response = enrol_checked(&auth, &device, credential, &pem, &info).await?;
    if let Some(claimed) = claimed_hardware {
        record_hardware_id(&auth, &device, &claimed).await?;
    }
    Ok(response)
}

/// Spends an enrolment token, after checking what the device states about itself: a wrong
/// hardware id leaves the token usable.
async fn consume_checked(
    auth: &Auth,
    token: &str,
    claimed: Option<&str>,
) -> Result<Result<String, medsec_store::Error>, ApiError> {
    if let Some(claimed) = claimed {
        check_hardware_id(auth, token, claimed).await?;
    }
    Ok(auth
        .state
        .store
        .consume_enrolment_token(&tokens::hash(token), now_ms())
        .await)
}

/// The hardware id an enrolling device states (`Medsec-Hardware-Id`), if any.
fn hardware_id_header(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("medsec-hardware-id") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|t| {
            !t.is_empty()
                && t.len() <= 128
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        })
        .ok_or_else(|| {
            ApiError::BadRequest(
                "Medsec-Hardware-Id must be 1 to 128 letters, digits or - _ . :".into(),
            )
        })?;
    Ok(Some(text.to_owned()))
}

/// Refuses, before the token is spent and audited, an enrolment whose stated hardware id is
/// not the one the device's record holds, or not one its model's profile declares. The
/// answer names the expected ones: a device built for another board would only fail every
/// update offered to it.
async fn check_hardware_id(auth: &Auth, token: &str, claimed: &str) -> Result<(), ApiError> {
    let state = &auth.state;
    // An unknown, used, revoked or expired token is refused by the consumption that follows,
    // with its own reason, and learns nothing about the device it named.
    let Ok(t) = state.store.enrolment_token(&tokens::hash(token)).await else {
        return Ok(());
    };
    if t.used_at_ms.is_some() || t.revoked_at_ms.is_some() || t.expires_at_ms <= now_ms() {
        return Ok(());
    }
    let device = match state.store.device(&t.device_id).await {
        Ok(d) => d,
        Err(medsec_store::Error::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut why = None;
    if !device.hardware_id.is_empty() && device.hardware_id != claimed {
        why = Some(format!(
            "device {} is registered for hardware id {:?}, and it states {claimed:?}",
            device.id, device.hardware_id
        ));
    } else {
        let registry = crate::inventory::records::Registry::read(&state.store).await?;
        if let Some(profile) = registry.models.get(&device.model)
            && !profile.hardware_ids.is_empty()
            && !profile.hardware_ids.iter().any(|h| h == claimed)
        {
            why = Some(format!(
                "model {:?} declares hardware ids {:?}, and device {} states {claimed:?}",
                device.model, profile.hardware_ids, device.id
            ));
        }
    }
    let Some(why) = why else {
        return Ok(());
    };
    let mut e = deny_event(
        &auth.conn,
        &format!("Device::{:?}", device.id),
        "est.enroll",
        &Target::Device(device.id.clone()),
        &why,
    );
    e.kind = "enrolment".into();
    state.audit(e).await?;
    Err(ApiError::BadRequest(format!(
        "enrolment refused: {why}; the enrolment token was not used"
    )))
}

/// Keeps the hardware id an enrolled device stated, when its record had none.
async fn record_hardware_id(auth: &Auth, device: &DeviceId, claimed: &str) -> Result<(), ApiError> {
    let record = auth.state.store.device(device.as_str()).await?;
    if !record.hardware_id.is_empty() {
        return Ok(());
    }
    let patch = crate::inventory::InventoryPatch {
        hardware_id: Some(claimed.to_owned()),
        ..Default::default()
    };
    crate::inventory::update(&auth.state.store, device.as_str(), &patch)
        .await
        .map_err(super::error::bad_request)?;
    let mut e = event(
        "inventory",
        &format!("Device::{:?}", device.as_str()),
        "device.update",
        &format!("Device::{:?}", device.as_str()),
        "info",
    );
    e.source = auth.conn.addr.to_string();
    e.detail = format!("hardware id {claimed:?} stated at enrolment");
    auth.state.audit(e).await?;
    Ok(())
}

/// Enrols `device`, registered already, as the caller its record makes.
async fn enrol_checked(
    auth: &Auth,
    device: &DeviceId,
    credential: &'static str,
    pem: &str,
    info: &medsec_pki::RequestInfo,
) -> Result<Response, ApiError> {
    let caller = Caller {
        subject: device_subject(&auth.state.store.device(device.as_str()).await?),
        record: None,
        credential,
    };
    enrol(auth, &caller, "est.enroll", device, pem, info).await
}

/// Holds an IDevID to the scope of the manufacturer CA that issued it (device id pattern,
/// hardware type, model) and enrols only a device never enrolled, unless an operator's
/// enrolment token for that device comes with it (the explicit, audited re-enrolment, whose new
/// certificate supersedes the old). Registers the device if it has no record. Every refusal
/// is audited.
async fn manufacturer_enrolment(
    auth: &Auth,
    claim: &crate::state::ManufacturerClaim,
    token: Option<&str>,
) -> Result<DeviceId, ApiError> {
    const ACTION: &str = "est.enroll";
    let state = &auth.state;
    let id = claim.id.as_str();
    let m = state
        .config
        .manufacturers
        .get(claim.manufacturer)
        .ok_or_else(|| ApiError::Internal("manufacturer index out of range".into()))?;
    let target = Target::Device(id.to_owned());
    let principal = format!("Manufacturer::{:?}", m.name);
    let (principal_ref, target_ref) = (&principal, &target);
    let refuse = |detail: String| async move {
        let mut e = deny_event(&auth.conn, principal_ref, ACTION, target_ref, &detail);
        e.kind = "enrolment".into();
        state.audit(e).await?;
        Err::<DeviceId, ApiError>(ApiError::Unauthenticated(format!(
            "enrolment refused: {detail}"
        )))
    };
    if !m.covers_id(id) {
        return refuse(format!(
            "the IDevID names device {id:?}, outside what manufacturer CA {:?} may vouch for \
             (device_ids {:?})",
            m.name, m.device_ids
        ))
        .await;
    }
    if !m.hardware_ids.is_empty()
        && !claim
            .hardware_types
            .iter()
            .any(|t| m.hardware_ids.contains(t))
    {
        return refuse(format!(
            "the IDevID states hardware type(s) {:?}, none of which manufacturer CA {:?} may \
             vouch for ({:?})",
            claim.hardware_types, m.name, m.hardware_ids
        ))
        .await;
    }
    let record = match state.store.device(id).await {
        Ok(d) => Some(d),
        Err(medsec_store::Error::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let model = match &record {
        Some(d) => d.model.clone(),
        None => m
            .models
            .first()
            .cloned()
            .unwrap_or_else(|| "unspecified".into()),
    };
    let certified = match &record {
        Some(d) => d.state != "registered" || !state.store.device_keys(id).await?.is_empty(),
        None => false,
    };
    // Only with an operator's enrolment token for this very device.
    if certified && token.is_none() {
        return refuse(format!(
            "device {id:?} was enrolled before: an IDevID enrols a device once. To enrol it \
             again with its IDevID, an operator issues an enrolment token for it (medsec \
             fleet token create --device {id}), which the device presents with the IDevID"
        ))
        .await;
    }
    if !m.models.is_empty() && !m.models.contains(&model) {
        return refuse(format!(
            "device {id:?} is registered as model {model:?}, which manufacturer CA {:?} may not \
             vouch for ({:?})",
            m.name, m.models
        ))
        .await;
    }
    if certified && let Some(token) = token {
        match state
            .store
            .consume_enrolment_token(&crate::tokens::hash(token), now_ms())
            .await
        {
            Ok(for_device) if for_device == id => {}
            Ok(other) => {
                return refuse(format!(
                    "the enrolment token presented with the IDevID of {id:?} is for {other:?} (and is now used)"
                ))
                .await;
            }
            Err(medsec_store::Error::TokenRefused { reason }) => {
                return refuse(format!(
                    "the enrolment token presented with the IDevID of {id:?} is refused: {reason}"
                ))
                .await;
            }
            Err(e) => return Err(e.into()),
        }
        let mut e = event(
            "enrolment",
            &principal,
            ACTION,
            &Target::Device(id.to_owned()).label(),
            "info",
        );
        e.source = auth.conn.addr.to_string();
        e.detail = format!(
            "re-enrolment of {id:?} with its IDevID (sha256 {}) and an operator's enrolment \
             token: the new certificate supersedes the current one",
            &claim.fingerprint[..16]
        );
        state.audit(e).await?;
    }
    if record.is_none() {
        state.store.register_device(id, &model, now_ms()).await?;
    }
    Ok(claim.id.clone())
}

pub(super) async fn est_simplereenroll(
    auth: Auth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    const ACTION: &str = "est.reenroll";
    let (pem, info) = parse_request(&auth, &headers, ACTION, &body).await?;
    let target = match &auth.conn.peer {
        Peer::Device(id) => Target::Device(id.as_str().to_owned()),
        _ => Target::Fleet,
    };
    let caller = auth.caller(ACTION, &target).await?;
    let Peer::Device(device) = &auth.conn.peer else {
        return Err(ApiError::Unauthenticated(
            "re-enrolment needs the device's certificate".into(),
        ));
    };
    enrol(&auth, &caller, ACTION, device, &pem, &info).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn claims_for_another_device_are_refused() {
        let me = DeviceId::new("pump-1").unwrap();
        let info = |cns: &[&str], sans: &[&str]| medsec_pki::RequestInfo {
            spki_sha256: [0; 32],
            common_names: cns.iter().map(|s| (*s).to_owned()).collect(),
            alt_names: sans.iter().map(|s| (*s).to_owned()).collect(),
        };
        assert!(check_claims(&info(&[], &[]), &me).is_ok());
        assert!(check_claims(&info(&["pump-1"], &["URI(urn:medsec:device:pump-1)"]), &me).is_ok());
        assert!(
            check_claims(&info(&["pump-2"], &[]), &me)
                .unwrap_err()
                .contains("pump-2")
        );
        assert!(check_claims(&info(&["pump-1"], &["URI(urn:medsec:device:pump-2)"]), &me).is_err());
        assert!(check_claims(&info(&[], &["DNSName(evil.example)"]), &me).is_err());
    }

    #[test]
    fn est_bodies_are_base64_der_with_any_whitespace() {
        assert!(est_csr(b"MIIB\n  AA==\r\n").is_ok());
        assert!(matches!(
            est_csr(b"not base64!"),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn est_answers_are_mime_base64_lines() {
        let der: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let text = mime_base64(&der);
        assert!(text.split("\r\n").all(|l| l.len() <= 64));
        assert!(text.ends_with("\r\n"));
        let compact: String = text.split_whitespace().collect();
        assert_eq!(STANDARD.decode(compact).unwrap(), der);
    }

    proptest::proptest! {
        #[test]
        fn est_bodies_survive_any_line_breaks(
            der in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..600),
            width in 1usize..100,
            crlf in proptest::prelude::any::<bool>(),
        ) {
            let text = STANDARD.encode(&der);
            let eol = if crlf { "\r\n" } else { "\n" };
            let wrapped: Vec<String> = text
                .as_bytes()
                .chunks(width)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            let pem = est_csr(wrapped.join(eol).as_bytes()).unwrap();
            let (label, back) = pem_rfc7468::decode_vec(pem.as_bytes()).unwrap();
            proptest::prop_assert_eq!(label, "CERTIFICATE REQUEST");
            proptest::prop_assert_eq!(back, der);
        }
    }

    #[test]
    fn basic_auth_carries_the_token_as_password() {
        let mut h = HeaderMap::new();
        let v = format!("Basic {}", STANDARD.encode("pump-1:medsec-enrol-abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&v).unwrap());
        assert_eq!(
            basic_or_bearer_token(&h).as_deref(),
            Some("medsec-enrol-abc")
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer xyz"),
        );
        assert_eq!(basic_or_bearer_token(&h).as_deref(), Some("xyz"));
    }
}

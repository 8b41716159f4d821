//! Who is calling and whether they may, for every way in (HTTPS on both ports, MQTT through
//! the broker): a device principal comes from its verified certificate and its record, never
//! from the request; Cedar decides; the decision is audited (repeated allowed routine decisions
//! as counts, see [`crate::repeats`]) before anything acts. The HTTP layer adds only how an
//! operator's token is read from the request (`api/auth.rs`).

use medsec_audit::Event;
use medsec_pki::DeviceId;

use crate::audit_log::event;
use crate::authz::{RequestContext, Subject, Target};
use crate::state::{AppState, Conn, now_ms};

/// An authenticated caller.
pub(crate) struct Caller {
    pub(crate) subject: Subject,
    pub(crate) credential: &'static str,
    /// A device caller's own record, as read to build its principal.
    pub(crate) record: Option<medsec_store::Device>,
}

/// The audit entry of a refused credential.
pub(crate) fn deny_event(
    conn: &Conn,
    principal: &str,
    action: &str,
    target: &Target,
    detail: &str,
) -> Event {
    let mut e = event("authn", principal, action, &target.label(), "deny");
    e.source = conn.addr.to_string();
    e.detail = detail.to_owned();
    e
}

/// A device's Cedar principal, from its record.
pub(crate) fn device_subject(d: &medsec_store::Device) -> Subject {
    Subject::Device {
        id: d.id.clone(),
        model: d.model.clone(),
        state: d.state.clone(),
        quarantined: d.quarantined,
    }
}

/// The caller behind a device certificate naming `id`, from its record as read (`NotFound`: the
/// certificate names a device medsec has no record of, which is audited and refused).
pub(crate) async fn device_caller(
    state: &AppState,
    conn: &Conn,
    id: &DeviceId,
    record: Result<medsec_store::Device, crate::Error>,
    action: &str,
    target: &Target,
) -> Result<Caller, crate::Error> {
    // Revocation holds on every request, not only at the handshake: a connection opened before
    // the CRL listed its certificate, or before the device was revoked, is refused from its
    // next request on.
    let revoked = conn
        .serial
        .as_deref()
        .is_some_and(|serial| state.tls.is_revoked(serial));
    let refusal = match &record {
        _ if revoked => Some("the certificate is revoked"),
        Ok(d) if d.state == "revoked" => Some("the device is revoked"),
        Ok(d) if d.state == crate::tokens::DECOMMISSIONED => Some("the device is decommissioned"),
        _ => None,
    };
    if let Some(why) = refusal {
        let label = format!("Device::{:?}", id.as_str());
        state
            .audit(deny_event(conn, &label, action, target, why))
            .await?;
        return Err(crate::Error::Unauthenticated {
            reason: if why.ends_with("decommissioned") {
                why.to_owned()
            } else {
                format!("{why}: enrol again with a new enrolment token")
            },
        });
    }
    match record {
        Ok(d) => Ok(Caller {
            subject: device_subject(&d),
            credential: "fleet-certificate",
            record: Some(d),
        }),
        Err(crate::Error::Store(medsec_store::Error::NotFound { .. })) => {
            let label = format!("Device::{:?}", id.as_str());
            state
                .audit(deny_event(
                    conn,
                    &label,
                    action,
                    target,
                    "certificate names a device medsec has no record of",
                ))
                .await?;
            Err(crate::Error::Forbidden)
        }
        Err(e) => Err(e),
    }
}

/// Asks Cedar and audits the decision (repeated allowed routine decisions as counts, see
/// [`crate::repeats`]); `Forbidden` unless allowed.
pub(crate) async fn authorize(
    state: &AppState,
    conn: &Conn,
    caller: &Caller,
    action: &str,
    target: &Target,
) -> Result<(), crate::Error> {
    let context = RequestContext {
        time: now_ms() / 1000,
        source: conn.addr.ip(),
        credential: caller.credential,
    };
    let decision = state
        .policies
        .decide(&caller.subject, action, target, &context)?;
    let mut e = event(
        "authz",
        &caller.subject.label(),
        action,
        &target.label(),
        if decision.allowed { "allow" } else { "deny" },
    );
    e.policies = decision.policies;
    e.source = conn.addr.to_string();
    e.detail = decision.errors.join("; ");
    if decision.allowed {
        state.audit_or_count(e, conn.addr.ip()).await.map(|_| ())
    } else {
        state.audit(e).await?;
        Err(crate::Error::Forbidden)
    }
}

/// A device id from a path or a topic, refused by name when medsec does not allow it.
pub(crate) fn device_id(id: &str) -> Result<DeviceId, crate::Error> {
    DeviceId::new(id).map_err(|e| crate::Error::Refused {
        reason: e.to_string(),
    })
}

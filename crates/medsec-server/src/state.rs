//! What both ports share: the per-connection facts ([`Conn`], [`Peer`]) and the server's state
//! ([`AppState`]): store, policies, audit writer, CA, limits, director, Defender, risk cache.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use medsec_audit::Event;
use medsec_pki::{DeviceId, FleetCa};
use medsec_store::AnyStore;

use crate::Config;
use crate::audit_log::{AuditLog, event};
use crate::authz::Policies;
use crate::campaigns;
use crate::director::Director;
use crate::tls::Reloadable;

pub(crate) use medsec_util::now_ms;

/// Who is at the other end of a connection, from its verified certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// No client certificate (EST with a token, or the operator port).
    None,
    /// A fleet device certificate.
    Device(DeviceId),
    /// A manufacturer certificate (IDevID) vouching for a device: enrolment only.
    Manufacturer(Arc<ManufacturerClaim>),
    /// A verified certificate naming no device.
    Unidentified,
}

/// What a verified manufacturer certificate (IDevID) claims, for enrolment to check against
/// the scope of the CA that issued it.
#[derive(Debug, PartialEq, Eq)]
pub struct ManufacturerClaim {
    /// The device id its subject names (serialNumber, else CN).
    pub id: DeviceId,
    /// Which `manufacturers` entry of the configuration vouches for it.
    pub manufacturer: usize,
    /// The SHA-256 of the IDevID (DER), hex: the identity it is bound to.
    pub fingerprint: String,
    /// The hwType OIDs of the RFC 4108 HardwareModuleNames it carries.
    pub hardware_types: Vec<String>,
}

/// Per-connection facts attached to each request.
#[derive(Debug, Clone)]
pub struct Conn {
    /// Peer address.
    pub addr: SocketAddr,
    /// Certificate identity.
    pub peer: Peer,
    /// The verified fleet certificate (DER) of a device peer.
    pub certificate: Option<Arc<[u8]>>,
    /// That certificate's serial (DER integer contents), checked against the CRL in force on
    /// every request.
    pub serial: Option<Arc<[u8]>>,
    /// Whether this is the operator port.
    pub operator_port: bool,
    /// The MQTT broker the message came through (then `addr` is the broker's address, and the
    /// broker verified the device certificate).
    pub broker: Option<Arc<str>>,
}

impl Conn {
    /// Where a request came from, as stored beside telemetry: the peer's address, or
    /// `mqtt://<broker>/<client id>` for a message relayed by a broker.
    pub fn source_label(&self) -> String {
        match &self.broker {
            Some(broker) => format!("mqtt://{broker}"),
            None => self.addr.to_string(),
        }
    }
}

/// Shared by both ports.
pub struct AppState {
    /// Storage.
    pub store: AnyStore,
    /// Cedar policies.
    pub policies: Policies,
    audit_log: AuditLog,
    pub(crate) ca: tokio::sync::Mutex<FleetCa>,
    pub(crate) tls: Arc<Reloadable>,
    /// The configuration in effect.
    pub config: Config,
    limiter: DefaultKeyedRateLimiter<String>,
    /// Each device's telemetry over MQTT: the HTTPS rate, with `limits.mqtt_device_burst`.
    mqtt_limiter: DefaultKeyedRateLimiter<String>,
    /// The EST `cacerts` answer.
    pub(crate) cacerts: tokio::sync::OnceCell<Bytes>,
    /// The director (per-device update metadata) and the image repository.
    pub director: Director,
    /// Counts of repeated allowed routine decisions not yet logged.
    pub(crate) repeats: crate::repeats::Repeats,
    /// The Defender's rules, applied to every telemetry batch.
    pub defender: medsec_defender::rules::Policy,
    /// Learned baselines: the signing key and each model's loaded version.
    pub baselines: crate::baselines::Baselines,
    /// Sigma event rules (`defender_sigma_dir`).
    pub sigma: medsec_defender::sigma::SigmaRules,
    /// Release SBOMs, advisories and VEX as this replica parsed them.
    pub risk: crate::risk::RiskCache,
    /// What the console's live pages follow.
    pub changes: crate::changes::Changes,
}

impl AppState {
    /// Assembles the state.
    #[expect(
        clippy::too_many_arguments,
        reason = "each part is required and of its own type; a builder would allow a half-made state"
    )]
    pub fn new(
        store: AnyStore,
        policies: Policies,
        audit_log: AuditLog,
        ca: FleetCa,
        tls: Arc<Reloadable>,
        config: Config,
        director: Director,
        baseline_key: Arc<dyn medsec_crypto::KeySource>,
    ) -> Self {
        let per_second =
            NonZeroU32::new(config.limits.requests_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.limits.request_burst).unwrap_or(NonZeroU32::MIN);
        let mqtt_burst =
            NonZeroU32::new(config.limits.mqtt_device_burst).unwrap_or(NonZeroU32::MIN);
        let reload = std::time::Duration::from_secs(config.defender_baseline_reload_secs);
        let repeats = crate::repeats::Repeats::new(
            config.limits.audit_repeat_window_secs,
            config.limits.audit_repeat_streams,
        );
        Self {
            store,
            policies,
            audit_log,
            ca: tokio::sync::Mutex::new(ca),
            tls,
            config,
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            mqtt_limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(mqtt_burst)),
            cacerts: tokio::sync::OnceCell::new(),
            director,
            repeats,
            defender: medsec_defender::rules::Policy::default(),
            baselines: crate::baselines::Baselines::new(baseline_key, reload),
            sigma: medsec_defender::sigma::SigmaRules::default(),
            risk: crate::risk::RiskCache::default(),
            changes: crate::changes::Changes::default(),
        }
    }

    /// Compares vendor names with these aliases when matching by name (default: medsec's
    /// own table).
    #[must_use]
    pub fn with_vendor_names(mut self, names: medsec_risk::names::Names) -> Self {
        self.risk = crate::risk::RiskCache::new(names);
        self
    }

    /// Applies the Defender's rule policy (default: the rules that need no profile).
    #[must_use]
    pub fn with_defender(mut self, policy: medsec_defender::rules::Policy) -> Self {
        self.defender = policy;
        self
    }

    /// Applies the Sigma event rules.
    #[must_use]
    pub fn with_sigma(mut self, rules: medsec_defender::sigma::SigmaRules) -> Self {
        self.sigma = rules;
        self
    }

    /// Appends to the audit log and waits until the entry is durable. A security-relevant
    /// entry (what the event export takes: refusals, incidents, revocations, campaign status
    /// changes, failed audit checks, decommissioning) is also one structured log line, under
    /// the target `medsec::security`; audit entries hold no secret.
    pub async fn audit(&self, event: Event) -> Result<u64, crate::Error> {
        let security = crate::export::classify(&event).map(|(kind, severity)| {
            (
                kind,
                severity,
                event.action.clone(),
                event.principal.clone(),
                event.resource.clone(),
                event.decision.clone(),
                event.detail.clone(),
            )
        });
        let seq = self.audit_log.record(event).await?;
        if let Some((kind, severity, action, principal, resource, decision, detail)) = security {
            tracing::info!(
                target: "medsec::security",
                seq, kind, severity, %action, %principal, %resource, %decision, %detail,
                "security event"
            );
        }
        Ok(seq)
    }

    /// The audit writer's queue: entries waiting, and its capacity.
    pub fn audit_queue(&self) -> (usize, usize) {
        self.audit_log.queue()
    }

    /// Audits `event`, made for a request from `ip`, unless it repeats a summarised stream
    /// (routine allowed decisions, rate-limit refusals, refused telemetry: see
    /// [`crate::repeats`]), in which case it is counted into the stream's next entry. Returns
    /// whether it was logged now.
    pub(crate) async fn audit_or_count(
        &self,
        mut event: Event,
        ip: std::net::IpAddr,
    ) -> Result<bool, crate::Error> {
        match self.repeats.note(&event, ip, now_ms()) {
            crate::repeats::Verdict::Count => return Ok(false),
            crate::repeats::Verdict::Log { skipped, since_ms } if skipped > 0 => {
                let note = crate::repeats::preceded_by(skipped, since_ms, &event);
                event.detail = if event.detail.is_empty() {
                    note
                } else {
                    format!("{}; {note}", event.detail)
                };
            }
            crate::repeats::Verdict::Log { .. } => {}
        }
        self.audit(event).await.map(|_| true)
    }

    /// Takes one request from `key`'s allowance.
    pub fn rate_ok(&self, key: &str) -> bool {
        self.limiter.check_key(&key.to_owned()).is_ok()
    }

    /// Takes one MQTT telemetry message from the device's allowance.
    pub(crate) fn mqtt_rate_ok(&self, device: &str) -> bool {
        self.mqtt_limiter.check_key(&device.to_owned()).is_ok()
    }

    /// Logs the summaries of repeated routine decisions whose window ended by `now_ms`.
    pub async fn flush_repeats(&self, now_ms: i64) {
        for e in self.repeats.sweep(now_ms) {
            if let Err(err) = self.audit(e).await {
                tracing::error!(error = ?err, "logging a summary of repeated decisions failed");
            }
        }
    }

    /// Logs the summaries of repeated routine decisions whose window ended, then fails campaign
    /// devices whose report is overdue, and audits each change (errors are logged; the next
    /// round tries again).
    pub async fn expire_reports(&self) {
        self.flush_repeats(now_ms()).await;
        if let Err(e) = crate::telemetry::alert_gaps(self, now_ms()).await {
            tracing::error!(error = ?e, "raising alerts for telemetry gaps failed; retried next round");
        }
        let changed = match campaigns::expire_reports(&self.store, now_ms()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "checking campaign report timeouts failed");
                return;
            }
        };
        for (id, late, status) in changed {
            let mut e = event(
                "campaign",
                "system",
                "campaign.timeout",
                &format!("Campaign::{id:?}"),
                "warn",
            );
            e.detail =
                format!("{late} device(s) did not report in time: failed; campaign {status}");
            if let Err(err) = self.audit(e).await {
                tracing::error!(error = ?err, "auditing a campaign timeout failed");
            }
        }
    }

    /// Periodic chores: forgets the rate-limit state of idle principals, and re-signs the CRL
    /// (and reloads TLS) once it is half its lifetime old, so relying parties never see a stale
    /// one. Returns whether the CRL was re-signed.
    pub async fn housekeeping(&self) -> Result<bool, crate::Error> {
        self.limiter.retain_recent();
        self.mqtt_limiter.retain_recent();
        let days = self.config.crl_days;
        let path = self.ca.lock().await.crl_path();
        let age = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        let half_life = Duration::from_secs(u64::try_from(days).unwrap_or(7) * 43_200);
        if age.is_some_and(|a| a < half_life) {
            return Ok(false);
        }
        {
            let mut ca = self.ca.lock().await;
            ca.reload_state()?;
            ca.crl(days)?;
        }
        self.tls.reload()?;
        let mut e = event("revocation", "system", "crl.sign", "Fleet", "info");
        e.detail = format!("CRL re-signed, valid {days} days");
        self.audit(e).await?;
        Ok(true)
    }
}

/// The block a source address is limited and summarised by: an IPv4 address as it is (an
/// IPv4-mapped IPv6 one as IPv4), an IPv6 address by its /64, so that one host cycling through
/// its 2^64 addresses is one source.
pub(crate) fn address_block(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_host_is_one_source_by_its_64_and_a_mapped_ipv4_address_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_block(a), address_block(b));
        assert_ne!(address_block(a), address_block(other));
        assert_eq!(address_block(a).to_string(), "2001:db8:1:2::");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_block(mapped).to_string(), "192.0.2.7");
    }
}

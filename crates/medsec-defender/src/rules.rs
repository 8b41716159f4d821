//! Rules evaluated on every telemetry batch as it arrives, per device class (model): the
//! microsegmentation allowlists, metric thresholds, security events that are alerts by
//! themselves, bursts of failed logins, and implausible clinical readings. Every alert names its
//! rule, a MITRE ATT&CK for ICS technique, and the evidence: what was observed against what the
//! policy allows.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::telemetry::{Batch, ClinicalSignal, Event, MetricName, SecurityEvent};

mod clinical;
pub use clinical::{ClinicalPolicy, default_max_step};

/// How bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Investigate.
    Medium,
    /// Act now.
    High,
    /// Patient safety may be at stake.
    Critical,
}

impl Severity {
    /// Its name, as JSON writes it (`low`, `medium`, `high`, `critical`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// The severity of a name, if it is one.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Low, Self::Medium, Self::High, Self::Critical]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// A MITRE ATT&CK for ICS technique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Technique {
    /// Its id (`T0882`).
    pub id: String,
    /// Its name.
    pub name: String,
}

pub(crate) fn technique(id: &str, name: &str) -> Technique {
    Technique {
        id: id.into(),
        name: name.into(),
    }
}

/// One piece of evidence: what was seen, against what is allowed or usual.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The feature or field.
    pub feature: String,
    /// What was seen.
    pub observed: String,
    /// What the policy allows or the baseline holds.
    pub expected: String,
}

/// An alert raised by a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// When the event that raised it happened (Unix ms, the device's clock).
    pub at_ms: i64,
    /// The rule.
    pub rule: String,
    /// How bad.
    pub severity: Severity,
    /// The technique it points to.
    pub technique: Technique,
    /// One line for a person.
    pub summary: String,
    /// Why.
    pub evidence: Vec<Evidence>,
}

impl Alert {
    /// What, beside the device and the rule, makes two occurrences the same alert, so that a
    /// repeated one is counted rather than raised again (as SIEMs deduplicate): the
    /// destination of a flow, the listening port, the clinical signal, the reported MAC or
    /// address; otherwise the rule alone (empty).
    pub fn aggregate_key(&self) -> String {
        let observed = |feature: &str| {
            self.evidence
                .iter()
                .find(|e| e.feature == feature)
                .map(|e| e.observed.clone())
        };
        match self.rule.as_str() {
            // `address:port`, an IPv6 address in brackets (`[fd00::1]:443`).
            "destination-not-allowed" => {
                let remote =
                    observed("remote").map(|r| if r.contains(':') { format!("[{r}]") } else { r });
                [remote, observed("remote_port")]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(":")
            }
            "clinical-implausible" | "clinical-jump" => self
                .evidence
                .first()
                .map(|e| e.feature.clone())
                .unwrap_or_default(),
            "listening-port-not-allowed" | "identity-mac-changed" | "identity-address-conflict" => {
                self.evidence
                    .first()
                    .map(|e| e.observed.clone())
                    .unwrap_or_default()
            }
            _ => String::new(),
        }
    }
}

/// A metric threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// The metric.
    pub metric: MetricName,
    /// Alert when a reported value is above this.
    pub above: f64,
    /// Severity (default medium).
    #[serde(default = "medium")]
    pub severity: Severity,
}

fn medium() -> Severity {
    Severity::Medium
}

/// What a window rule adds up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum Counted {
    /// The values of a numeric metric.
    Metric(crate::telemetry::MetricName),
    /// Security events of one kind.
    Security(crate::telemetry::SecurityEvent),
}

/// A threshold over a time window longer than one batch: the total over the device's batches
/// received within `window_secs` (the current one included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowRule {
    /// What is added up.
    pub count: Counted,
    /// The window, in seconds (1 to 86,400).
    pub window_secs: u64,
    /// Alert when the total rises above this (once per crossing, not on every batch after).
    pub above: f64,
    /// Severity (default medium).
    #[serde(default = "medium")]
    pub severity: Severity,
}

impl WindowRule {
    /// What `batch` adds to the total.
    pub fn total(&self, batch: &Batch) -> f64 {
        batch
            .events
            .iter()
            .map(|e| match (self.count, e) {
                (Counted::Metric(m), Event::Metric { name, value, .. }) if *name == m => {
                    value.unwrap_or(0.0)
                }
                (Counted::Security(k), Event::Security { event, .. }) if *event == k => 1.0,
                _ => 0.0,
            })
            .sum()
    }

    /// Its name in alerts (`window:login_failed`).
    pub fn name(&self) -> String {
        let inner = match self.count {
            Counted::Metric(m) => serde_json::to_value(m),
            Counted::Security(k) => serde_json::to_value(k),
        };
        let inner = inner
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        format!("window:{inner}")
    }
}

/// The window rules of `class` on `batch`, given the device's earlier batches as (received at,
/// batch) and the current batch's receipt time `now_ms`: an alert when a window's total
/// crosses its threshold with this batch.
pub fn evaluate_windows(
    class: &ClassPolicy,
    batch: &Batch,
    earlier: &[(i64, Batch)],
    now_ms: i64,
) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for rule in &class.windows {
        let since = now_ms.saturating_sub(i64::try_from(rule.window_secs).unwrap_or(0) * 1000);
        let before: f64 = earlier
            .iter()
            .filter(|(at, _)| *at >= since)
            .map(|(_, b)| rule.total(b))
            .sum();
        let now = before + rule.total(batch);
        if now > rule.above && before <= rule.above {
            let name = rule.name();
            let technique = match rule.count {
                Counted::Security(SecurityEvent::LoginFailed)
                | Counted::Metric(
                    MetricName::AuthorizationFailures | MetricName::ConnectionAttempts,
                ) => technique("T0859", "Valid Accounts"),
                Counted::Metric(MetricName::BytesOut | MetricName::PacketsOut) => {
                    technique("T0882", "Theft of Operational Information")
                }
                _ => technique("T0814", "Denial of Service"),
            };
            alerts.push(Alert {
                at_ms: batch.events.last().map_or(now_ms, Event::at_ms),
                rule: name.clone(),
                severity: rule.severity,
                technique,
                summary: format!(
                    "{name}: {now} within {} s, above the class's {}",
                    rule.window_secs, rule.above
                ),
                evidence: vec![Evidence {
                    feature: name.trim_start_matches("window:").to_owned(),
                    observed: format!("{now} in {} s", rule.window_secs),
                    expected: format!("at most {}", rule.above),
                }],
            });
        }
    }
    alerts
}

fn default_login_burst() -> usize {
    5
}

/// What one device class may do. An empty allowlist allows everything of its kind (the class
/// has not been profiled); a profiled class lists what it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassPolicy {
    /// Remote networks flows may reach (`10.0.1.0/24`, `10.0.1.150`, `fd00::/8`).
    #[serde(default)]
    pub destinations: Vec<String>,
    /// Remote ports flows may reach.
    #[serde(default)]
    pub remote_ports: Vec<u16>,
    /// TCP ports the device may listen on.
    #[serde(default)]
    pub listening_tcp_ports: Vec<u16>,
    /// Metric thresholds.
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
    /// Failed logins in one batch that make a burst.
    #[serde(default = "default_login_burst")]
    pub login_failure_burst: usize,
    /// Thresholds over windows longer than one batch.
    #[serde(default)]
    pub windows: Vec<WindowRule>,
    /// The device's clinical conventions: what it sends for no reading, its ranges, and the
    /// largest change between two readings.
    #[serde(default)]
    pub clinical: ClinicalPolicy,
}

impl Default for ClassPolicy {
    fn default() -> Self {
        Self {
            destinations: Vec::new(),
            remote_ports: Vec::new(),
            listening_tcp_ports: Vec::new(),
            thresholds: Vec::new(),
            login_failure_burst: default_login_burst(),
            windows: Vec::new(),
            clinical: ClinicalPolicy::default(),
        }
    }
}

fn default_address_window() -> u64 {
    600
}

fn default_baseline_threshold() -> f64 {
    8.0
}

/// The rule policy: one class policy per model, and a default for the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// How far back, in seconds, a device's source addresses are compared: a certificate used
    /// from an address, then another, then the first again within this time is in use on two
    /// devices at once (default 600; 0 turns the check off).
    #[serde(default = "default_address_window")]
    pub address_window_secs: u64,
    /// A flow or metric this many robust standard deviations from its class's learned baseline
    /// raises an alert (default 8; see [`crate::learned`]).
    #[serde(default = "default_baseline_threshold")]
    pub baseline_threshold: f64,
    /// For models not listed.
    #[serde(default)]
    pub default: ClassPolicy,
    /// By model.
    #[serde(default)]
    pub classes: BTreeMap<String, ClassPolicy>,
}

/// A network (address and prefix length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| -> u128 {
            match a {
                IpAddr::V4(v) => u128::from(u32::from(v)) << 96,
                IpAddr::V6(v) => u128::from(v),
            }
        };
        if self.addr.is_ipv4() != ip.is_ipv4() {
            return false;
        }
        if self.prefix == 0 {
            return true;
        }
        // Both kinds sit at the top of 128 bits, so a prefix is always the top `prefix` bits.
        let shift = 128 - u32::from(self.prefix);
        (bits(self.addr) >> shift) == (bits(ip) >> shift)
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            address_window_secs: default_address_window(),
            baseline_threshold: default_baseline_threshold(),
            default: ClassPolicy::default(),
            classes: BTreeMap::new(),
        }
    }
}

impl ClassPolicy {
    /// The longest window of its window rules, in seconds (0 without any).
    pub fn longest_window_secs(&self) -> u64 {
        self.windows
            .iter()
            .map(|w| w.window_secs)
            .max()
            .unwrap_or(0)
    }
}

impl Policy {
    /// Reads a policy (JSON) and checks every network in it.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let policy: Policy = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if !(policy.baseline_threshold.is_finite() && policy.baseline_threshold > 0.0) {
            return Err(format!(
                "baseline_threshold must be a positive number, not {}",
                policy.baseline_threshold
            ));
        }
        for (name, class) in std::iter::once(("default", &policy.default))
            .chain(policy.classes.iter().map(|(k, v)| (k.as_str(), v)))
        {
            for net in &class.destinations {
                Net::parse(net).map_err(|e| format!("class {name}: {e}"))?;
            }
            for w in &class.windows {
                if !(1..=86_400).contains(&w.window_secs) || !w.above.is_finite() {
                    return Err(format!(
                        "class {name}: window rule {}: window_secs must be 1 to 86400 and above a number",
                        w.name()
                    ));
                }
            }
        }
        Ok(policy)
    }

    /// The policy of a model.
    pub fn class(&self, model: &str) -> &ClassPolicy {
        self.classes.get(model).unwrap_or(&self.default)
    }
}

fn allowed(nets: &[String], ip: IpAddr) -> bool {
    nets.iter()
        .filter_map(|n| Net::parse(n).ok())
        .any(|n| n.contains(ip))
}

/// The alert when a device's batch is numbered `sequence`, more than `max_step` past `last`,
/// the last one accepted: accepted, it would make every later batch of the device look like a
/// replay and blind the Defender to it, so the batch was refused. A device's own agent never
/// jumps so far; a forged or corrupted batch, or a tool replaying with a chosen number, does.
pub fn sequence_jump(sequence: i64, last: i64, max_step: i64, at_ms: i64) -> Alert {
    Alert {
        at_ms,
        rule: "telemetry-sequence-jump".into(),
        severity: Severity::High,
        technique: technique("T0804", "Block Reporting Message"),
        summary: format!(
            "a telemetry batch numbered {sequence} was refused: {} past the last accepted batch \
             ({last}), more than the {max_step} allowed; accepted, it would have refused every \
             later batch of the device",
            sequence.saturating_sub(last)
        ),
        evidence: vec![Evidence {
            feature: "sequence".into(),
            observed: sequence.to_string(),
            expected: format!(
                "{} to {}",
                last.saturating_add(1),
                last.saturating_add(max_step)
            ),
        }],
    }
}

/// The alert when a device's batch carries a sequence number stored already with other content:
/// its own agent never reuses a number for other events, so this is a replayed or forged
/// batch (or a device restored from an old backup). The batch was refused.
pub fn replay_conflict(sequence: i64, at_ms: i64) -> Alert {
    Alert {
        at_ms,
        rule: "telemetry-replay".into(),
        severity: Severity::High,
        technique: technique("T0856", "Spoof Reporting Message"),
        summary: format!(
            "a telemetry batch numbered {sequence} was refused: that number is stored with other \
             content (a replayed or forged batch); further ones in the audit window are counted \
             in the audit log"
        ),
        evidence: vec![Evidence {
            feature: "sequence".into(),
            observed: sequence.to_string(),
            expected: "a number not used before, or the stored batch itself".into(),
        }],
    }
}

/// The alert when a device publishes telemetry over MQTT faster than its limit allows: the
/// batches over it were refused (acknowledged to the broker, not stored).
pub fn rate_limited(per_second: u32, burst: u32, at_ms: i64) -> Alert {
    Alert {
        at_ms,
        rule: "telemetry-rate-limit".into(),
        severity: Severity::Medium,
        technique: technique("T0814", "Denial of Service"),
        summary: format!(
            "the device published telemetry faster than {per_second}/s sustained (burst {burst}): \
             batches over the limit were refused and not stored; the audit log counts them"
        ),
        evidence: vec![Evidence {
            feature: "telemetry rate".into(),
            observed: format!("over {per_second}/s after a burst of {burst}"),
            expected: format!("at most {per_second}/s"),
        }],
    }
}

/// The alert when a device's batches skipped numbers that have not arrived within
/// `timeout_secs`: batches lost on the way (a broker dropped them), or withheld.
pub fn sequence_gap(
    first: i64,
    last: i64,
    opened_at_ms: i64,
    timeout_secs: u64,
    at_ms: i64,
) -> Alert {
    let missing = last.saturating_sub(first).saturating_add(1);
    Alert {
        at_ms,
        rule: "telemetry-gap".into(),
        severity: Severity::Medium,
        technique: technique("T0804", "Block Reporting Message"),
        summary: format!(
            "telemetry batches {first} to {last} ({missing} batch(es)) were skipped and have not \
             arrived within {timeout_secs} s: lost on the way, or withheld"
        ),
        evidence: vec![Evidence {
            feature: "missing sequence numbers".into(),
            observed: format!("{first}..={last}, open since {opened_at_ms} ms"),
            expected: "every number, within the timeout".into(),
        }],
    }
}

/// Evaluates `class` on `batch`: the alerts it raises, in event order.
pub fn evaluate(class: &ClassPolicy, batch: &Batch) -> Vec<Alert> {
    let mut alerts = Vec::new();
    let mut login_failures: Vec<i64> = Vec::new();
    // Each signal's last reading in the batch (time, value), for the jump rule.
    let mut last_reading: BTreeMap<ClinicalSignal, (i64, f64)> = BTreeMap::new();
    for event in &batch.events {
        match event {
            Event::Flow {
                at_ms,
                remote,
                remote_port,
                bytes_out,
                ..
            } => {
                let net_ok = class.destinations.is_empty() || allowed(&class.destinations, *remote);
                let port_ok =
                    class.remote_ports.is_empty() || class.remote_ports.contains(remote_port);
                if !(net_ok && port_ok) {
                    let mut evidence = Vec::new();
                    if !net_ok {
                        evidence.push(Evidence {
                            feature: "remote".into(),
                            observed: remote.to_string(),
                            expected: class.destinations.join(", "),
                        });
                    }
                    if !port_ok {
                        evidence.push(Evidence {
                            feature: "remote_port".into(),
                            observed: remote_port.to_string(),
                            expected: join(&class.remote_ports),
                        });
                    }
                    evidence.push(Evidence {
                        feature: "bytes_out".into(),
                        observed: bytes_out.to_string(),
                        expected: "0 (no flow allowed)".into(),
                    });
                    alerts.push(Alert {
                        at_ms: *at_ms,
                        rule: "destination-not-allowed".into(),
                        severity: Severity::High,
                        technique: technique("T0882", "Theft of Operational Information"),
                        summary: format!(
                            "a flow to {remote}:{remote_port} ({bytes_out} bytes out), outside the class's allowed destinations"
                        ),
                        evidence,
                    });
                }
            }
            Event::Metric {
                at_ms,
                name,
                value,
                values,
            } => {
                if *name == MetricName::ListeningTcpPorts && !class.listening_tcp_ports.is_empty() {
                    let extra: Vec<&String> = values
                        .iter()
                        .filter(|p| {
                            p.parse::<u16>()
                                .is_ok_and(|p| !class.listening_tcp_ports.contains(&p))
                        })
                        .collect();
                    if !extra.is_empty() {
                        alerts.push(Alert {
                            at_ms: *at_ms,
                            rule: "listening-port-not-allowed".into(),
                            severity: Severity::High,
                            technique: technique("T0822", "External Remote Services"),
                            summary: format!(
                                "listening on TCP port(s) {} that the class does not use",
                                extra
                                    .iter()
                                    .map(|s| s.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                            evidence: vec![Evidence {
                                feature: "listening_tcp_ports".into(),
                                observed: values.join(", "),
                                expected: join(&class.listening_tcp_ports),
                            }],
                        });
                    }
                }
                if let Some(v) = value {
                    for t in class.thresholds.iter().filter(|t| t.metric == *name) {
                        if *v > t.above {
                            let metric = serde_json::to_value(name)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_owned))
                                .unwrap_or_default();
                            let tech = match name {
                                MetricName::AuthorizationFailures
                                | MetricName::ConnectionAttempts => {
                                    technique("T0859", "Valid Accounts")
                                }
                                MetricName::BytesOut | MetricName::PacketsOut => {
                                    technique("T0882", "Theft of Operational Information")
                                }
                                _ => technique("T0814", "Denial of Service"),
                            };
                            alerts.push(Alert {
                                at_ms: *at_ms,
                                rule: format!("threshold:{metric}"),
                                severity: t.severity,
                                technique: tech,
                                summary: format!("{metric} {v} is above {}", t.above),
                                evidence: vec![Evidence {
                                    feature: metric,
                                    observed: v.to_string(),
                                    expected: format!("<= {}", t.above),
                                }],
                            });
                        }
                    }
                }
            }
            Event::Security {
                at_ms,
                event,
                detail,
            } => {
                let raised = match event {
                    SecurityEvent::LoginFailed => {
                        login_failures.push(*at_ms);
                        None
                    }
                    SecurityEvent::AttestationFailed => Some((
                        "attestation-failed",
                        Severity::Critical,
                        technique("T0857", "System Firmware"),
                        "the device failed attestation: it may run firmware nobody signed",
                    )),
                    SecurityEvent::LoggingDisabled => Some((
                        "logging-disabled",
                        Severity::High,
                        technique("T0872", "Indicator Removal on Host"),
                        "logging was turned off on the device",
                    )),
                    _ => None,
                };
                if let Some((rule, severity, technique, summary)) = raised {
                    alerts.push(Alert {
                        at_ms: *at_ms,
                        rule: rule.into(),
                        severity,
                        technique,
                        summary: summary.into(),
                        evidence: vec![Evidence {
                            feature: "security_event".into(),
                            observed: format!("{event:?} {detail}").trim().to_owned(),
                            expected: "none".into(),
                        }],
                    });
                }
            }
            // Judged against the device's stored binding by the server
            // ([`crate::binding::mac_alerts`]): one batch alone cannot tell a changed MAC.
            Event::Identity { .. } => {}
            Event::Clinical {
                at_ms,
                signal,
                value,
                state,
            } => class.clinical.judge(
                *at_ms,
                *signal,
                *value,
                *state,
                &mut last_reading,
                &mut alerts,
            ),
        }
    }
    if class.login_failure_burst > 0 && login_failures.len() >= class.login_failure_burst {
        alerts.push(Alert {
            at_ms: login_failures.last().copied().unwrap_or(0),
            rule: "login-failure-burst".into(),
            severity: Severity::High,
            technique: technique("T0859", "Valid Accounts"),
            summary: format!(
                "{} failed local logins in one batch: someone is guessing credentials",
                login_failures.len()
            ),
            evidence: vec![Evidence {
                feature: "login_failed".into(),
                observed: login_failures.len().to_string(),
                expected: format!("< {}", class.login_failure_burst),
            }],
        });
    }
    alerts
}

fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pump() -> ClassPolicy {
        Policy::from_json(
            r#"{"classes": {"infusion-pump": {
                "destinations": ["10.0.1.0/24"], "remote_ports": [1111, 443],
                "listening_tcp_ports": [443],
                "thresholds": [{"metric": "authorization_failures", "above": 3, "severity": "high"}],
                "login_failure_burst": 3}}}"#,
        )
        .unwrap()
        .class("infusion-pump")
        .clone()
    }

    fn batch(events: &str) -> Batch {
        Batch::parse(
            format!(r#"{{"sequence": 1, "events": [{events}]}}"#).as_bytes(),
            100,
        )
        .unwrap()
    }

    fn flow(remote: &str, port: u16) -> String {
        format!(
            r#"{{"kind": "flow", "at_ms": 5, "remote": "{remote}", "remote_port": {port}, "protocol": "tcp",
                "bytes_out": 90000, "bytes_in": 10, "packets_out": 70, "packets_in": 3, "duration_ms": 800}}"#
        )
    }

    /// Normal traffic of the class: nothing fires.
    const NORMAL: &str = r#"
        {"kind": "flow", "at_ms": 1, "remote": "10.0.1.150", "remote_port": 1111, "protocol": "tcp",
         "bytes_out": 496, "bytes_in": 186, "packets_out": 4, "packets_in": 3, "duration_ms": 12},
        {"kind": "metric", "at_ms": 1, "name": "listening_tcp_ports", "values": ["443"]},
        {"kind": "metric", "at_ms": 1, "name": "authorization_failures", "value": 1},
        {"kind": "security", "at_ms": 1, "event": "login_failed"},
        {"kind": "security", "at_ms": 2, "event": "boot", "detail": "slot A 1.2.0"},
        {"kind": "clinical", "at_ms": 1, "signal": "spo2", "value": 97},
        {"kind": "clinical", "at_ms": 1, "signal": "infusion_rate", "value": 125}"#;

    #[test]
    fn normal_traffic_raises_nothing() {
        assert_eq!(evaluate(&pump(), &batch(NORMAL)), vec![]);
        // An unprofiled class (empty allowlists) raises nothing on the same traffic either.
        assert_eq!(evaluate(&ClassPolicy::default(), &batch(NORMAL)), vec![]);
    }

    #[test]
    fn each_rule_fires_on_its_crafted_case_with_its_evidence() {
        let p = pump();
        let one = |events: &str| {
            let a = evaluate(&p, &batch(events));
            assert_eq!(a.len(), 1, "{events}: {a:?}");
            a.into_iter().next().unwrap()
        };
        let a = one(&flow("203.0.113.9", 443));
        assert_eq!(
            (a.rule.as_str(), a.technique.id.as_str()),
            ("destination-not-allowed", "T0882")
        );
        assert_eq!(a.evidence[0].observed, "203.0.113.9");
        assert_eq!(a.evidence[0].expected, "10.0.1.0/24");
        let a = one(&flow("10.0.1.150", 22));
        assert_eq!(a.evidence[0].feature, "remote_port");
        let a = one(
            r#"{"kind": "metric", "at_ms": 1, "name": "listening_tcp_ports", "values": ["443", "23"]}"#,
        );
        assert_eq!(
            (a.rule.as_str(), a.technique.id.as_str()),
            ("listening-port-not-allowed", "T0822")
        );
        assert!(
            a.summary.contains("23") && !a.summary.contains("443"),
            "{}",
            a.summary
        );
        let a =
            one(r#"{"kind": "metric", "at_ms": 1, "name": "authorization_failures", "value": 9}"#);
        assert_eq!(
            (a.rule.as_str(), a.severity),
            ("threshold:authorization_failures", Severity::High)
        );
        let a = one(
            r#"{"kind": "security", "at_ms": 1, "event": "attestation_failed", "detail": "PCR 7"}"#,
        );
        assert_eq!(
            (a.rule.as_str(), a.severity),
            ("attestation-failed", Severity::Critical)
        );
        let a = one(r#"{"kind": "security", "at_ms": 1, "event": "logging_disabled"}"#);
        assert_eq!(a.technique.id, "T0872");
        let a = one(r#"{"kind": "clinical", "at_ms": 1, "signal": "spo2", "value": 140}"#);
        assert_eq!(
            (a.rule.as_str(), a.technique.id.as_str()),
            ("clinical-implausible", "T0832")
        );
        assert_eq!(a.evidence[0].expected, "50 to 100");
        let failed = r#"{"kind": "security", "at_ms": 1, "event": "login_failed"}"#;
        let a = one(&[failed, failed, failed].join(","));
        assert_eq!(a.rule, "login-failure-burst");
    }

    #[test]
    fn repeated_alerts_share_a_key_that_names_what_they_are_about() {
        let p = pump();
        let key = |events: &str| evaluate(&p, &batch(events))[0].aggregate_key();
        assert_eq!(key(&flow("203.0.113.9", 443)), "203.0.113.9");
        assert_eq!(key(&flow("203.0.113.9", 22)), "203.0.113.9:22");
        assert_eq!(key(&flow("fd00::9", 22)), "[fd00::9]:22");
        assert_eq!(key(&flow("10.0.1.150", 22)), "22");
        assert_eq!(
            key(r#"{"kind": "clinical", "at_ms": 1, "signal": "spo2", "value": 140}"#),
            "spo2"
        );
        let failed = r#"{"kind": "security", "at_ms": 1, "event": "login_failed"}"#;
        assert_eq!(key(&[failed; 3].join(",")), "");
    }

    #[test]
    fn window_rules_fire_once_when_their_total_crosses_the_threshold() {
        let policy = Policy::from_json(
            r#"{"classes": {"pump": {"windows": [
              {"count": {"kind": "security", "name": "login_failed"}, "window_secs": 600, "above": 5, "severity": "high"},
              {"count": {"kind": "metric", "name": "bytes_out"}, "window_secs": 60, "above": 1000}]}}}"#,
        )
        .unwrap();
        let class = policy.class("pump");
        let fails = |n: usize| {
            let events: Vec<String> = (0..n)
                .map(|_| r#"{"kind": "security", "at_ms": 5, "event": "login_failed"}"#.to_owned())
                .collect();
            batch(&events.join(","))
        };
        let bytes = |v: u32| {
            batch(&format!(
                r#"{{"kind": "metric", "at_ms": 5, "name": "bytes_out", "value": {v}}}"#
            ))
        };
        let now = 1_000_000;
        // Two fails a batch: 2, 4 stay at or below 5; 6 crosses; 8 does not fire again.
        let mut earlier: Vec<(i64, Batch)> = Vec::new();
        let mut fired = Vec::new();
        for i in 0..4 {
            let b = fails(2);
            fired.push(evaluate_windows(class, &b, &earlier, now + i).len());
            earlier.push((now + i, b));
        }
        assert_eq!(fired, vec![0, 0, 1, 0]);
        let a = &evaluate_windows(class, &fails(6), &[], now)[0];
        assert_eq!(
            (a.rule.as_str(), a.severity),
            ("window:login_failed", Severity::High)
        );
        assert_eq!(a.technique.id, "T0859");
        // Outside the window, earlier batches no longer count.
        let old = vec![(now - 61_000, bytes(900))];
        assert!(evaluate_windows(class, &bytes(500), &old, now).is_empty());
        let recent = vec![(now - 30_000, bytes(900))];
        let a = evaluate_windows(class, &bytes(500), &recent, now);
        assert_eq!(a[0].rule, "window:bytes_out");
        assert_eq!(a[0].evidence[0].observed, "1400 in 60 s");
        // A bad window is named.
        let e = Policy::from_json(
            r#"{"default": {"windows": [{"count": {"kind": "metric", "name": "bytes_out"}, "window_secs": 0, "above": 1}]}}"#,
        )
        .unwrap_err();
        assert!(e.contains("window_secs"), "{e}");
    }

    #[test]
    fn severity_names_round_trip_as_json_writes_them() {
        for s in [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.name());
            assert_eq!(Severity::from_name(s.name()), Some(s));
        }
        assert_eq!(Severity::from_name("severe"), None);
    }

    #[test]
    fn networks_match_by_prefix_and_bad_ones_are_refused() {
        let n = Net::parse("10.0.1.0/24").unwrap();
        assert!(n.contains("10.0.1.7".parse().unwrap()));
        assert!(!n.contains("10.0.2.7".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        assert!(
            Net::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            Net::parse("fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
        assert!(
            Net::parse("10.0.1.9")
                .unwrap()
                .contains("10.0.1.9".parse().unwrap())
        );
        assert!(
            !Net::parse("10.0.1.9")
                .unwrap()
                .contains("10.0.1.8".parse().unwrap())
        );
        let err =
            Policy::from_json(r#"{"default": {"destinations": ["10.0.0.0/33"]}}"#).unwrap_err();
        assert!(
            err.contains("class default") && err.contains("0 to 32"),
            "{err}"
        );
        let err = Policy::from_json(r#"{"default": {"destination": []}}"#).unwrap_err();
        assert!(err.contains("unknown field `destination`"), "{err}");
    }
}

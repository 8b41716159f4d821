//! The telemetry batch a device sends: its form, and the checks every batch passes before it is
//! stored. Anything not described here is refused, so a batch cannot smuggle fields (a patient
//! name, a device id that is not the sender's) into the store.
//!
//! ```json
//! {"sequence": 42, "events": [
//!   {"kind": "metric", "at_ms": 1764748800000, "name": "bytes_out", "value": 18230},
//!   {"kind": "metric", "at_ms": 1764748800000, "name": "listening_tcp_ports", "values": ["22", "443"]},
//!   {"kind": "security", "at_ms": 1764748801000, "event": "login_failed", "detail": "service console"},
//!   {"kind": "flow", "at_ms": 1764748802000, "remote": "10.0.1.150", "remote_port": 1111,
//!    "protocol": "tcp", "bytes_out": 496, "bytes_in": 186, "packets_out": 4, "packets_in": 3,
//!    "duration_ms": 12.3},
//!   {"kind": "clinical", "at_ms": 1764748803000, "signal": "spo2", "value": 97}
//! ]}
//! ```
//!
//! The device is never named in the batch: the server takes it from the mutual-TLS identity.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Why a batch was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TelemetryError {
    /// Not a batch (bad JSON, a missing or unknown field, a wrong type).
    #[error("not a telemetry batch: {0}")]
    Form(String),
    /// Too many events.
    #[error("the batch holds {got} events; at most {max} are accepted per batch")]
    TooManyEvents {
        /// Events in the batch.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// An event breaks a rule.
    #[error("event {index}: {reason}")]
    Event {
        /// Its position in the batch (from 0).
        index: usize,
        /// Which rule.
        reason: String,
    },
}

/// The metrics of AWS IoT Device Defender's device-side set, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricName {
    /// Bytes received.
    BytesIn,
    /// Bytes sent.
    BytesOut,
    /// Packets received.
    PacketsIn,
    /// Packets sent.
    PacketsOut,
    /// Established TCP connections.
    EstablishedConnections,
    /// Listening TCP ports (`values`).
    ListeningTcpPorts,
    /// Listening UDP ports (`values`).
    ListeningUdpPorts,
    /// Addresses the device sent to (`values`).
    DestinationIps,
    /// Failed authorisations.
    AuthorizationFailures,
    /// Connection attempts.
    ConnectionAttempts,
    /// Disconnects.
    Disconnects,
    /// Messages sent.
    MessagesSent,
    /// Messages received.
    MessagesReceived,
    /// Largest message, bytes.
    MessageSizeMax,
}

impl MetricName {
    /// Whether the metric is a set of values (ports, addresses) rather than a number.
    pub fn is_set(self) -> bool {
        matches!(
            self,
            Self::ListeningTcpPorts | Self::ListeningUdpPorts | Self::DestinationIps
        )
    }
}

/// Security events a device reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityEvent {
    /// Booted (detail: the slot and version).
    Boot,
    /// An update was installed.
    UpdateInstalled,
    /// An update failed or was rolled back.
    UpdateFailed,
    /// The configuration changed.
    ConfigChanged,
    /// A local login failed.
    LoginFailed,
    /// A local login succeeded.
    LoginSucceeded,
    /// Attestation (measured boot) passed.
    AttestationPassed,
    /// Attestation failed.
    AttestationFailed,
    /// The device's logging was turned off.
    LoggingDisabled,
}

/// Transport protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP.
    Icmp,
}

/// Physiological signals whose integrity is watched. Only the value travels: no patient
/// identifier, no timestamp finer than the event's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClinicalSignal {
    /// Body temperature, °C.
    Temperature,
    /// Oxygen saturation, %.
    Spo2,
    /// Pulse rate, per minute.
    PulseRate,
    /// Systolic pressure, mmHg.
    Systolic,
    /// Diastolic pressure, mmHg.
    Diastolic,
    /// Heart rate, per minute.
    HeartRate,
    /// Respiration rate, per minute.
    RespirationRate,
    /// Infusion rate, ml/h.
    InfusionRate,
}

/// What a sensor says about its own reading. Monitors send a value even when no patient is
/// measured: a sensor off or not attached, calibrating, or no patient connected. Those readings
/// (often 0) are not physiology, and are never judged as such.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorState {
    /// Measuring a patient (the default).
    #[default]
    Measuring,
    /// Switched off.
    Off,
    /// Not attached to the patient.
    Detached,
    /// Calibrating.
    Calibrating,
    /// No patient connected.
    NoPatient,
}

impl SensorState {
    fn is_measuring(&self) -> bool {
        *self == Self::Measuring
    }
}

impl ClinicalSignal {
    /// Every signal.
    pub const ALL: [ClinicalSignal; 8] = [
        Self::Temperature,
        Self::Spo2,
        Self::PulseRate,
        Self::Systolic,
        Self::Diastolic,
        Self::HeartRate,
        Self::RespirationRate,
        Self::InfusionRate,
    ];

    /// The range a sensor attached to a living patient can read; readings outside it are
    /// physically impossible (a broken sensor, or altered data), and are kept and flagged
    /// rather than refused. Temperature allows skin and peripheral probes, which read far
    /// below core temperature (down to 15 °C); a device profile can narrow any range
    /// ([`crate::rules::ClinicalPolicy`]).
    pub fn plausible(self) -> std::ops::RangeInclusive<f64> {
        match self {
            Self::Temperature => 15.0..=45.0,
            Self::Spo2 => 50.0..=100.0,
            Self::PulseRate | Self::HeartRate => 20.0..=300.0,
            Self::Systolic => 40.0..=300.0,
            Self::Diastolic => 20.0..=200.0,
            Self::RespirationRate => 2.0..=80.0,
            Self::InfusionRate => 0.0..=1_200.0,
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// A metric over the interval ending at `at_ms`.
    Metric {
        /// When (Unix ms).
        at_ms: i64,
        /// Which.
        name: MetricName,
        /// Its value (number metrics).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<f64>,
        /// Its members (set metrics).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        values: Vec<String>,
    },
    /// A security event.
    Security {
        /// When.
        at_ms: i64,
        /// Which.
        event: SecurityEvent,
        /// Free text (at most 256 characters, no control characters).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        detail: String,
    },
    /// A network flow summary.
    Flow {
        /// When it ended.
        at_ms: i64,
        /// The other end.
        remote: IpAddr,
        /// Its port.
        remote_port: u16,
        /// Protocol.
        protocol: Protocol,
        /// Bytes sent.
        bytes_out: u64,
        /// Bytes received.
        bytes_in: u64,
        /// Packets sent.
        packets_out: u64,
        /// Packets received.
        packets_in: u64,
        /// Duration.
        duration_ms: f64,
    },
    /// A clinical-data integrity signal.
    Clinical {
        /// When.
        at_ms: i64,
        /// Which signal.
        signal: ClinicalSignal,
        /// Its value.
        value: f64,
        /// The sensor's state (default measuring): a reading from a sensor that is off,
        /// detached, calibrating or without a patient is not physiology.
        #[serde(default, skip_serializing_if = "SensorState::is_measuring")]
        state: SensorState,
    },
    /// The device's own network identity, for identity binding: the MAC address of the
    /// interface it talks to medsec through (`aa:bb:cc:dd:ee:ff`).
    Identity {
        /// When.
        at_ms: i64,
        /// The MAC address.
        mac: String,
    },
}

/// Whether `mac` is six hexadecimal octets separated by `:`.
pub fn is_mac(mac: &str) -> bool {
    let octets: Vec<&str> = mac.split(':').collect();
    octets.len() == 6
        && octets
            .iter()
            .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A batch as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// The device's sequence number for this batch (from 1, growing).
    pub sequence: i64,
    /// The events, oldest first.
    pub events: Vec<Event>,
}

/// Most members of a set metric.
pub const MAX_SET_MEMBERS: usize = 1_024;
/// Longest security event detail, in characters.
pub const MAX_DETAIL_CHARS: usize = 256;

impl Batch {
    /// Parses and checks a batch of at most `max_events` events.
    pub fn parse(json: &[u8], max_events: usize) -> Result<Self, TelemetryError> {
        let batch: Batch =
            serde_json::from_slice(json).map_err(|e| TelemetryError::Form(e.to_string()))?;
        if batch.sequence < 1 {
            return Err(TelemetryError::Form(format!(
                "sequence must be 1 or more, not {}",
                batch.sequence
            )));
        }
        if batch.events.is_empty() {
            return Err(TelemetryError::Form("the batch holds no event".into()));
        }
        if batch.events.len() > max_events {
            return Err(TelemetryError::TooManyEvents {
                got: batch.events.len(),
                max: max_events,
            });
        }
        for (index, event) in batch.events.iter().enumerate() {
            event
                .check()
                .map_err(|reason| TelemetryError::Event { index, reason })?;
        }
        Ok(batch)
    }
}

impl Event {
    /// When it happened.
    pub fn at_ms(&self) -> i64 {
        match self {
            Self::Metric { at_ms, .. }
            | Self::Security { at_ms, .. }
            | Self::Flow { at_ms, .. }
            | Self::Clinical { at_ms, .. }
            | Self::Identity { at_ms, .. } => *at_ms,
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.at_ms() < 0 {
            return Err("at_ms must not be negative".into());
        }
        match self {
            Self::Metric {
                name,
                value,
                values,
                ..
            } => {
                if name.is_set() {
                    if value.is_some() {
                        return Err(format!("{name:?} is a set: give `values`, not `value`"));
                    }
                    if values.len() > MAX_SET_MEMBERS {
                        return Err(format!(
                            "{name:?} has {} members; at most {MAX_SET_MEMBERS}",
                            values.len()
                        ));
                    }
                    let bad = values.iter().find(|v| match name {
                        MetricName::DestinationIps => v.parse::<IpAddr>().is_err(),
                        _ => v.parse::<u16>().is_err(),
                    });
                    if let Some(v) = bad {
                        return Err(format!("{name:?}: {v:?} is not a valid member"));
                    }
                } else {
                    match value {
                        Some(v) if v.is_finite() && *v >= 0.0 => {}
                        Some(v) => {
                            return Err(format!("{name:?}: {v} is not a count or size"));
                        }
                        None => return Err(format!("{name:?} needs a `value`")),
                    }
                    if !values.is_empty() {
                        return Err(format!("{name:?} is a number: give `value`, not `values`"));
                    }
                }
            }
            Self::Identity { mac, .. } => {
                if !is_mac(mac) {
                    return Err(format!(
                        "mac {mac:?} is not a MAC address (six hex octets separated by `:`)"
                    ));
                }
            }
            Self::Security { detail, .. } => {
                if detail.chars().count() > MAX_DETAIL_CHARS {
                    return Err(format!(
                        "detail is longer than {MAX_DETAIL_CHARS} characters"
                    ));
                }
                if detail.chars().any(char::is_control) {
                    return Err("detail holds control characters".into());
                }
            }
            Self::Flow { duration_ms, .. } => {
                if !duration_ms.is_finite() || *duration_ms < 0.0 {
                    return Err(format!("duration_ms {duration_ms} is not a duration"));
                }
            }
            Self::Clinical { value, .. } => {
                if !value.is_finite() {
                    return Err("the clinical value is not a finite number".into());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = r#"{"sequence": 42, "events": [
      {"kind": "metric", "at_ms": 1764748800000, "name": "bytes_out", "value": 18230},
      {"kind": "metric", "at_ms": 1764748800000, "name": "listening_tcp_ports", "values": ["22", "443"]},
      {"kind": "security", "at_ms": 1764748801000, "event": "login_failed", "detail": "service console"},
      {"kind": "flow", "at_ms": 1764748802000, "remote": "10.0.1.150", "remote_port": 1111,
       "protocol": "tcp", "bytes_out": 496, "bytes_in": 186, "packets_out": 4, "packets_in": 3,
       "duration_ms": 12.3},
      {"kind": "clinical", "at_ms": 1764748803000, "signal": "spo2", "value": 97}
    ]}"#;

    #[test]
    fn the_documented_batch_parses_and_round_trips() {
        let b = Batch::parse(GOOD.as_bytes(), 100).unwrap();
        assert_eq!(b.sequence, 42);
        assert_eq!(b.events.len(), 5);
        let again = Batch::parse(&serde_json::to_vec(&b).unwrap(), 100).unwrap();
        assert_eq!(again, b);
    }

    #[test]
    fn each_rule_refuses_by_name() {
        let cases = [
            (r#"{"sequence": 1, "events": []}"#, "no event"),
            (
                r#"{"sequence": 0, "events": [{"kind":"clinical","at_ms":1,"signal":"spo2","value":97}]}"#,
                "sequence must be 1",
            ),
            // A patient identifier, or a device id in the body, is an unknown field.
            (
                r#"{"sequence": 1, "events": [{"kind":"clinical","at_ms":1,"signal":"spo2","value":97,"patient":"Jane Doe"}]}"#,
                "unknown field `patient`",
            ),
            (
                r#"{"sequence": 1, "device": "pump-2", "events": [{"kind":"clinical","at_ms":1,"signal":"spo2","value":97}]}"#,
                "unknown field `device`",
            ),
            (
                r#"{"sequence": 1, "events": [{"kind":"metric","at_ms":1,"name":"bytes_out"}]}"#,
                "needs a `value`",
            ),
            (
                r#"{"sequence": 1, "events": [{"kind":"metric","at_ms":1,"name":"bytes_out","value":-5}]}"#,
                "not a count",
            ),
            (
                r#"{"sequence": 1, "events": [{"kind":"metric","at_ms":1,"name":"listening_tcp_ports","values":["ssh"]}]}"#,
                "not a valid member",
            ),
            (
                r#"{"sequence": 1, "events": [{"kind":"metric","at_ms":1,"name":"destination_ips","values":["10.0.0.999"]}]}"#,
                "not a valid member",
            ),
            (
                r#"{"sequence": 1, "events": [{"kind":"security","at_ms":1,"event":"login_failed","detail":"a\nb"}]}"#,
                "control characters",
            ),
            (
                r#"{"sequence": 1, "events": [{"kind":"teleport","at_ms":1}]}"#,
                "unknown variant `teleport`",
            ),
            (
                r#"{"sequence": 1, "events": [{"kind":"flow","at_ms":-1,"remote":"10.0.0.1","remote_port":1,"protocol":"tcp","bytes_out":1,"bytes_in":1,"packets_out":1,"packets_in":1,"duration_ms":1}]}"#,
                "negative",
            ),
        ];
        for (json, expected) in cases {
            let err = Batch::parse(json.as_bytes(), 10).unwrap_err().to_string();
            assert!(err.contains(expected), "{json}: {err}");
        }
        let err = Batch::parse(GOOD.as_bytes(), 4).unwrap_err();
        assert_eq!(err, TelemetryError::TooManyEvents { got: 5, max: 4 });
    }

    proptest! {
        /// Arbitrary bytes never panic the parser; they parse or are refused.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Batch::parse(&bytes, 100);
        }

        /// Mutating one byte of a good batch never panics and never yields an unchecked event.
        #[test]
        fn mutated_batches_are_parsed_or_refused(at in 0usize..GOOD.len(), byte in any::<u8>()) {
            let mut bytes = GOOD.as_bytes().to_vec();
            bytes[at] = byte;
            if let Ok(b) = Batch::parse(&bytes, 100) {
                prop_assert!(b.sequence >= 1 && !b.events.is_empty());
                prop_assert!(b.events.iter().all(|e| e.check().is_ok()));
            }
        }
    }
}

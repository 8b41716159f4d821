//! Event rules in the Sigma format (<https://sigmahq.io>), through the `sigma-rust` crate: a
//! security team writes its detections once, in the format its SIEM already reads, and medsec
//! runs them on every telemetry event at ingestion.
//!
//! Each event is matched as the JSON it was sent as, plus the device's `model`:
//!
//! ```json
//! {"kind": "security", "at_ms": 1764748801000, "event": "login_failed",
//!  "detail": "service console", "model": "infusion-pump"}
//! ```
//!
//! so a rule selects on `kind`, `event`, `detail`, `remote`, `remote_port`, `name`, `value`,
//! `signal`, `model`, … (`logsource` is not used to choose rules: every rule sees every event).
//! The alert takes the rule's `level` (an `informational` rule raises none, as the Sigma
//! specification says), its `id` (or title) as the rule name, and the first `attack.t0…` tag
//! as its ATT&CK for ICS technique. A batch raises at most one alert per rule.

use std::collections::BTreeSet;

use crate::rules::{Alert, Evidence, Severity, Technique, technique};
use crate::telemetry::Batch;

/// A set of loaded Sigma rules.
#[derive(Debug, Default)]
pub struct SigmaRules {
    rules: Vec<sigma_rust::Rule>,
}

impl SigmaRules {
    /// Parses rules given as `(file name, YAML)`; an error names the file and the problem.
    /// A file may hold one rule.
    pub fn parse(files: &[(String, String)]) -> Result<Self, String> {
        let mut rules = Vec::with_capacity(files.len());
        for (name, yaml) in files {
            let rule =
                sigma_rust::rule_from_yaml(yaml).map_err(|e| format!("Sigma rule {name}: {e}"))?;
            rules.push(rule);
        }
        Ok(Self { rules })
    }

    /// How many rules are loaded.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The alerts `batch` of a `model` device raises: at most one per rule, on its first
    /// matching event.
    pub fn evaluate(&self, model: &str, batch: &Batch) -> Vec<Alert> {
        if self.rules.is_empty() {
            return Vec::new();
        }
        let mut fired = BTreeSet::new();
        let mut alerts = Vec::new();
        for e in &batch.events {
            let Ok(mut json) = serde_json::to_value(e) else {
                continue;
            };
            if let Some(o) = json.as_object_mut() {
                o.insert("model".into(), model.into());
            }
            let Ok(event) = sigma_rust::Event::try_from(json) else {
                continue;
            };
            for (i, rule) in self.rules.iter().enumerate() {
                if fired.contains(&i) || !rule.is_match(&event) {
                    continue;
                }
                let Some(severity) = severity(rule.level.as_ref()) else {
                    continue;
                };
                fired.insert(i);
                let name = rule.id.clone().unwrap_or_else(|| rule.title.clone());
                alerts.push(Alert {
                    at_ms: e.at_ms(),
                    rule: format!("sigma:{name}"),
                    severity,
                    technique: attack_tag(rule.tags.as_deref().unwrap_or_default()),
                    summary: rule.title.clone(),
                    evidence: vec![Evidence {
                        feature: "event".into(),
                        observed: serde_json::to_string(e).unwrap_or_default(),
                        expected: rule
                            .description
                            .clone()
                            .unwrap_or_else(|| "no match of this Sigma rule".into()),
                    }],
                });
            }
        }
        alerts
    }
}

/// A rule's level as an alert severity; `informational` (and no level) raise no alert.
/// sigma-rust does not export its `Level` type, so the level is read by its name.
fn severity<L: std::fmt::Debug>(level: Option<&L>) -> Option<Severity> {
    match format!("{:?}", level?).to_ascii_lowercase().as_str() {
        "low" => Some(Severity::Low),
        "medium" => Some(Severity::Medium),
        "high" => Some(Severity::High),
        "critical" => Some(Severity::Critical),
        _ => None,
    }
}

/// The first ATT&CK for ICS technique among the tags (`attack.t0859`), or an unnamed one.
fn attack_tag(tags: &[String]) -> Technique {
    tags.iter()
        .filter_map(|t| t.strip_prefix("attack."))
        .find(|t| t.len() == 5 && t.starts_with("t0") && t[1..].bytes().all(|b| b.is_ascii_digit()))
        .map_or_else(
            || technique("", "none given in the Sigma rule's tags"),
            |t| technique(&t.to_ascii_uppercase(), "from the Sigma rule's tags"),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE_LOGIN: &str = r#"
title: Service console login on an infusion pump
id: medsec-0001
description: The service console is for the manufacturer's engineers only
logsource:
    product: medsec
    category: device_telemetry
detection:
    selection:
        kind: security
        event: login_succeeded
        detail|contains: service console
        model: infusion-pump
    condition: selection
level: high
tags:
    - attack.t0859
"#;

    fn batch(events: &str) -> Batch {
        Batch::parse(
            format!(r#"{{"sequence": 1, "events": [{events}]}}"#).as_bytes(),
            100,
        )
        .unwrap()
    }

    #[test]
    fn a_sigma_rule_fires_once_on_its_event_and_not_on_others() {
        let rules = SigmaRules::parse(&[("service.yml".into(), SERVICE_LOGIN.into())]).unwrap();
        let hit = r#"{"kind": "security", "at_ms": 7, "event": "login_succeeded", "detail": "service console (port 22)"}"#;
        let other = r#"{"kind": "security", "at_ms": 8, "event": "login_succeeded", "detail": "clinician badge"}"#;
        let alerts = rules.evaluate("infusion-pump", &batch(&format!("{hit}, {other}, {hit}")));
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].rule, "sigma:medsec-0001");
        assert_eq!(alerts[0].severity, Severity::High);
        assert_eq!(alerts[0].technique.id, "T0859");
        assert_eq!(alerts[0].at_ms, 7);
        assert!(rules.evaluate("patient-monitor", &batch(hit)).is_empty());
        assert!(rules.evaluate("infusion-pump", &batch(other)).is_empty());
    }

    #[test]
    fn informational_rules_raise_nothing_and_bad_rules_are_named() {
        let info = SERVICE_LOGIN.replace("level: high", "level: informational");
        let rules = SigmaRules::parse(&[("info.yml".into(), info)]).unwrap();
        let hit = r#"{"kind": "security", "at_ms": 7, "event": "login_succeeded", "detail": "service console"}"#;
        assert!(rules.evaluate("infusion-pump", &batch(hit)).is_empty());
        let e = SigmaRules::parse(&[("broken.yml".into(), "title: [unclosed".into())]).unwrap_err();
        assert!(e.contains("broken.yml"), "{e}");
    }
}

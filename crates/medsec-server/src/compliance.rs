//! Gathers the evidence of the compliance report ([`medsec_risk::compliance`]) from live
//! data: the store (devices, signed version reports, certificates, campaigns, incidents,
//! release SBOMs, advisories, VEX, model profiles, vendors), the audit log verified against
//! its key, and the Cedar policies in force. Also writes the CycloneDX SBOM + VEX bundle.
//!
//! Nothing here reads the clock: the report is as of `as_of_ms`, by default the timestamp of
//! the newest signed tree head (the last recorded event), so the same data gives the same
//! report.

use medsec_campaign::{Campaign, DeviceState};
use medsec_crypto::PublicKey;
use medsec_risk::compliance::{
    AccessFacts, AuditFacts, CampaignFacts, Catalogue, ClockFacts, DeviceFacts, Evidence,
    FindingFacts, IncidentFacts, ReleaseFacts, Report, VendorFacts,
};
use medsec_risk::matching::Status as MatchStatus;
use medsec_risk::vex::{Format, Meta, Statement, Status};
use medsec_store::Store;

use crate::Error;
use crate::authz::Policies;
use crate::inventory::records::{Registry, all_devices};

/// Most version reports counted per device, and incidents read.
const READ_LIMIT: u32 = 100_000;

/// The report and its bundle.
pub struct Output {
    /// The assessed report.
    pub report: Report,
    /// Bundle files: (name, bytes), by name. Per release, its SBOM as received and a
    /// CycloneDX VEX document stating each finding's status; and `index.json`.
    pub bundle: Vec<(String, Vec<u8>)>,
}

fn file_name(target: &str, hardware_id: &str) -> String {
    format!("{target}@{hardware_id}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The latest moment a report may be about: the end of year 9999 (RFC 3339's last year).
pub const LATEST_AS_OF_MS: i64 = 253_402_300_799_999;

/// Gathers the evidence and builds the report.
pub async fn gather(
    store: &impl Store,
    catalogue: &Catalogue,
    policies: &Policies,
    audit_key: &PublicKey,
    as_of_ms: Option<i64>,
    names: &medsec_risk::names::Names,
) -> Result<Output, Error> {
    let verified = crate::audit_log::verify(store, audit_key).await?;
    let last_event = crate::audit_log::latest_head(store).await?.map_or(0, |h| {
        i64::try_from(h.head.timestamp_ms).unwrap_or(i64::MAX)
    });
    let as_of_ms = as_of_ms.unwrap_or(last_event);
    if !(0..=LATEST_AS_OF_MS).contains(&as_of_ms) {
        return Err(Error::Config {
            reason: format!("the report's time {as_of_ms} ms is not between 1970 and 9999"),
        });
    }
    let registry = Registry::read(store).await?;

    let mut devices = Vec::new();
    for d in all_devices(store).await? {
        let reports = store.version_reports(&d.id, READ_LIMIT).await?;
        let keys = store.device_keys(&d.id).await?;
        devices.push(DeviceFacts {
            signed_reports: reports.len(),
            certificate_not_after_ms: keys.iter().map(|k| k.not_after_ms).max(),
            support: registry.support(&d.model, as_of_ms),
            id: d.id,
            model: d.model,
            state: d.state,
            hardware_id: d.hardware_id,
            version: d.installed_version,
            quarantined: d.quarantined,
        });
    }

    let loaded = crate::risk::parse_all(
        (0, 0),
        names.clone(),
        &store.advisory_docs().await?,
        &store.vex_docs().await?,
        store.release_sboms().await?,
    );
    let index = loaded.db.index();
    let mut releases = Vec::new();
    let mut bundle = Vec::new();
    let mut listing = Vec::new();
    for r in loaded.releases.values() {
        let mut matches = index.components(&r.sbom.components);
        // Statements about other releases are expected here: each release takes its own.
        let _ = medsec_risk::matching::apply_vex(
            &mut matches,
            &loaded.vex,
            &r.sbom.product_ids,
            r.sbom.subject_version.as_deref(),
        );
        let product = r
            .sbom
            .product_ids
            .first()
            .cloned()
            .unwrap_or_else(|| r.row.target.clone());
        let mut findings = Vec::new();
        let mut statements = Vec::new();
        for m in &matches {
            for f in &m.findings {
                findings.push(FindingFacts {
                    advisory: f.advisory.clone(),
                    component: f.via.clone(),
                    severity: f.severity.unwrap_or("unscored").to_owned(),
                    open: f.open(),
                    certain: f.certain,
                    known_exploited: f.exploited(),
                    vex: f.vex.as_ref().map(|v| v.status.name().to_owned()),
                });
                statements.push(match &f.vex {
                    Some(v) => Statement {
                        product: product.clone(),
                        component: Some(f.via.clone()),
                        ..v.clone()
                    },
                    None => Statement {
                        vulnerability: f.advisory.clone(),
                        product: product.clone(),
                        component: Some(f.via.clone()),
                        status: if f.certain {
                            Status::Affected
                        } else {
                            Status::UnderInvestigation
                        },
                        justification: None,
                        impact_statement: None,
                        action_statement: Some(match &f.fixed_in {
                            Some(v) => format!("update {} to {v} or later", m.component),
                            None => {
                                "no fixed version is known; apply compensating controls".to_owned()
                            }
                        }),
                        cyclonedx: None,
                    },
                });
            }
        }
        findings.sort_by(|a, b| (&a.advisory, &a.component).cmp(&(&b.advisory, &b.component)));
        let name = file_name(&r.row.target, &r.row.hardware_id);
        let sbom_name = format!("{name}.sbom.json");
        let vex_name = format!("{name}.vex.cdx.json");
        let vex = medsec_risk::vex::export(
            &statements,
            Format::CycloneDx,
            &Meta {
                author: "medsec".into(),
                timestamp: medsec_risk::compliance::rfc3339(as_of_ms),
                id: format!("{}:{}", r.row.target, r.row.hardware_id),
                namespace: String::new(),
            },
        )
        .map_err(|e| Error::Config {
            reason: format!("the VEX of {}: {e}", r.row.target),
        })?;
        listing.push(serde_json::json!({
            "target": r.row.target, "hardware_id": r.row.hardware_id, "version": r.row.version,
            "sbom": sbom_name, "sbom_sha256": r.row.sha256, "vex": vex_name,
            "vex_sha256": hex::encode(medsec_crypto::digest::sha256(vex.as_bytes())),
            "statements": statements.len(),
        }));
        bundle.push((sbom_name, r.row.body.clone().into_bytes()));
        bundle.push((vex_name, vex.into_bytes()));
        releases.push(ReleaseFacts {
            target: r.row.target.clone(),
            hardware_id: r.row.hardware_id.clone(),
            version: r.row.version.clone(),
            sbom_sha256: r.row.sha256.clone(),
            format: r.sbom.format.clone(),
            components: r.sbom.components.len(),
            completeness: r.sbom.completeness().score,
            unidentifiable: matches
                .iter()
                .filter(|m| m.status == MatchStatus::Unidentifiable)
                .count(),
            findings,
        });
    }
    releases.sort_by(|a, b| (&a.target, &a.hardware_id).cmp(&(&b.target, &b.hardware_id)));
    let index_json = serde_json::to_string_pretty(&serde_json::json!({
        "as_of": medsec_risk::compliance::rfc3339(as_of_ms),
        "releases": listing,
    }))
    .map_err(|e| Error::Config {
        reason: e.to_string(),
    })?;
    bundle.push(("index.json".into(), (index_json + "\n").into_bytes()));
    bundle.sort();

    let mut campaigns = Vec::new();
    for row in store.campaigns().await? {
        let c: Campaign = serde_json::from_str(&row.state).map_err(|e| Error::Config {
            reason: format!("campaign {} does not read: {e}", row.id),
        })?;
        let mut latencies_ms = Vec::new();
        let mut failed = 0;
        let mut n = 0;
        for (_, _, state) in c.devices() {
            n += 1;
            match state {
                DeviceState::Succeeded { at_ms } => latencies_ms.push(at_ms - row.created_at_ms),
                DeviceState::Failed { .. } => failed += 1,
                _ => {}
            }
        }
        campaigns.push(CampaignFacts {
            id: row.id.clone(),
            target: c.spec().release.target.clone(),
            version: c.spec().release.version.clone(),
            status: c.status().name().to_owned(),
            created_at_ms: row.created_at_ms,
            devices: n,
            latencies_ms,
            failed,
        });
    }
    campaigns.sort_by(|a, b| a.id.cmp(&b.id));

    let mut incidents = Vec::new();
    for row in store.incidents(false, READ_LIMIT).await? {
        let i: medsec_defender::incident::Incident =
            serde_json::from_str(&row.body).map_err(|e| Error::Config {
                reason: format!("incident {} does not read: {e}", row.id),
            })?;
        incidents.push(IncidentFacts {
            contained_after_ms: i
                .actions
                .iter()
                .filter(|a| a.playbook == "quarantine")
                .map(|a| a.at_ms - i.opened_at_ms)
                .min(),
            clocks: i
                .clocks(as_of_ms)
                .into_iter()
                .map(|c| ClockFacts {
                    report: c.report,
                    basis: c.basis,
                    due_at_ms: c.due_at_ms,
                })
                .collect(),
            severity: serde_json::to_value(i.severity)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            phase: row.phase,
            id: i.id,
            title: i.title,
            opened_at_ms: i.opened_at_ms,
        });
    }
    incidents.sort_by(|a, b| a.id.cmp(&b.id));

    let mut names: Vec<&String> = registry.vendors.keys().collect();
    names.extend(registry.models.values().map(|p| &p.vendor));
    names.sort();
    names.dedup();
    let vendors = names
        .into_iter()
        .map(|name| {
            let record = registry.vendors.get(name);
            let missing_documents = registry.missing_documents(name);
            VendorFacts {
                vendor: name.clone(),
                has_record: record.is_some(),
                security_contact: record.is_some_and(|r| !r.security_contact.is_empty()),
                missing_documents,
                critical_patch_days: record.and_then(|r| r.contract.critical_patch_days),
                vulnerability_notice_days: record
                    .and_then(|r| r.contract.vulnerability_notice_days),
            }
        })
        .collect();

    let evidence = Evidence {
        as_of_ms,
        devices,
        releases,
        campaigns,
        audit: AuditFacts {
            entries: verified.entries,
            heads: verified.heads,
            root_hash: verified.root_hash,
            findings: verified.findings.iter().map(ToString::to_string).collect(),
        },
        incidents,
        vendors,
        access: AccessFacts {
            policies: policies.list().iter().map(|(id, _)| id.clone()).collect(),
            audit_entries: verified.entries,
        },
    };
    Ok(Output {
        report: Report::build(catalogue, evidence),
        bundle,
    })
}

//! Each kind of evidence assessed into facts, warnings and gaps (one function per kind), with
//! the small formatting helpers they share.

use super::*;

/// Writes `ms` as an RFC 3339 UTC time to the second.
pub fn rfc3339(ms: i64) -> String {
    let day = ms.div_euclid(DAY_MS);
    let rest = ms.rem_euclid(DAY_MS) / 1000;
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        crate::inventory::format_date(day),
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

pub(super) fn hours(ms: i64) -> String {
    #[expect(
        clippy::cast_precision_loss,
        reason = "durations are far below 2^52 ms"
    )]
    let h = ms as f64 / HOUR_MS as f64;
    format!("{h:.1} h")
}

/// The value at quantile `q` of sorted `v` (nearest rank).
pub(super) fn quantile(v: &[i64], q: f64) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a rank within the list"
    )]
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v.get(rank - 1).copied()
}

pub(super) fn sbom(e: &Evidence) -> Assessment {
    let mut a = Assessment::default();
    a.facts.push(format!(
        "{} release SBOMs, each with its SHA-256 signed into the release's TUF target",
        e.releases.len()
    ));
    for r in &e.releases {
        a.facts.push(format!(
            "{} ({} {}): {} SBOM {}, {} components, {:.0}% complete",
            r.target,
            r.hardware_id,
            r.version,
            r.format,
            r.sbom_sha256,
            r.components,
            r.completeness
        ));
        if r.completeness < 100.0 {
            a.warnings.push(format!(
                "{}: the SBOM is {:.0}% complete (supplier, version, identifier, hash, support level, end of support)",
                r.target, r.completeness
            ));
        }
        if r.unidentifiable > 0 {
            a.warnings.push(format!(
                "{}: {} components have neither purl nor CPE and cannot be matched to advisories",
                r.target, r.unidentifiable
            ));
        }
    }
    let mut unknown: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for d in &e.devices {
        if d.version.is_empty() {
            continue;
        }
        if !e
            .releases
            .iter()
            .any(|r| r.hardware_id == d.hardware_id && r.version == d.version)
        {
            *unknown.entry((&d.hardware_id, &d.version)).or_default() += 1;
        }
    }
    for ((hw, v), n) in unknown {
        a.gaps.push(format!(
            "{n} device(s) run {hw} {v}, for which no SBOM is held"
        ));
    }
    if e.releases.is_empty() {
        a.gaps.push("no release SBOM is held".into());
    }
    a
}

pub(super) fn devices_on(e: &Evidence, r: &ReleaseFacts) -> usize {
    e.devices
        .iter()
        .filter(|d| d.hardware_id == r.hardware_id && d.version == r.version)
        .count()
}

pub(super) fn vulnerabilities(e: &Evidence) -> Assessment {
    let mut a = Assessment::default();
    for r in &e.releases {
        let open: Vec<&FindingFacts> = r.findings.iter().filter(|f| f.open).collect();
        let resolved = r.findings.len() - open.len();
        let running = devices_on(e, r);
        a.facts.push(format!(
            "{}: {} findings, {} open, {} resolved by VEX; {} device(s) run it",
            r.target,
            r.findings.len(),
            open.len(),
            resolved,
            running
        ));
        let names = |fs: &[&&FindingFacts]| {
            fs.iter()
                .map(|f| format!("{} in {}", f.advisory, f.component))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // The gaps are what the release gate blocks at its default threshold (one rule:
        // `crate::gate`): critical findings, and known exploited ones whatever their severity,
        // undetermined matches included.
        let gate = |f: &&&FindingFacts| {
            crate::gate::blocks(
                f.open,
                Some(f.severity.as_str()),
                f.known_exploited,
                crate::gate::Threshold::DEFAULT,
            )
        };
        let critical: Vec<&&FindingFacts> = open
            .iter()
            .filter(|f| gate(f) == Some(crate::gate::Block::Severity))
            .collect();
        if !critical.is_empty() {
            a.gaps.push(format!(
                "{}: {} open critical finding(s) without VEX: {}",
                r.target,
                critical.len(),
                names(&critical)
            ));
        }
        let exploited: Vec<&&FindingFacts> = open
            .iter()
            .filter(|f| gate(f) == Some(crate::gate::Block::Exploited))
            .collect();
        if !exploited.is_empty() {
            a.gaps.push(format!(
                "{}: {} known exploited (CISA KEV) open finding(s): {}",
                r.target,
                exploited.len(),
                names(&exploited)
            ));
        }
        let undetermined: Vec<&&FindingFacts> = open
            .iter()
            .filter(|f| !f.certain && gate(f).is_none())
            .collect();
        if !undetermined.is_empty() {
            a.warnings.push(format!(
                "{}: {} undetermined match(es) to assess: {}",
                r.target,
                undetermined.len(),
                names(&undetermined)
            ));
        }
        let high: Vec<&&FindingFacts> = open
            .iter()
            .filter(|f| f.certain && f.severity == "high")
            .collect();
        if !high.is_empty() {
            a.warnings.push(format!(
                "{}: {} open high finding(s): {}",
                r.target,
                high.len(),
                names(&high)
            ));
        }
    }
    if e.releases.is_empty() {
        a.gaps
            .push("no release SBOM is held, so no vulnerability status can be shown".into());
    }
    a
}

pub(super) fn updates(e: &Evidence) -> Assessment {
    let mut a = Assessment::default();
    let reports: usize = e.devices.iter().map(|d| d.signed_reports).sum();
    let enrolled: Vec<&DeviceFacts> = e.devices.iter().filter(|d| d.state == "enrolled").collect();
    a.facts.push(format!(
        "{reports} signed version reports held from {} device(s); {} of {} enrolled devices have reported what they run",
        e.devices.iter().filter(|d| d.signed_reports > 0).count(),
        enrolled.iter().filter(|d| !d.version.is_empty()).count(),
        enrolled.len()
    ));
    let silent: Vec<&str> = enrolled
        .iter()
        .filter(|d| d.version.is_empty())
        .map(|d| d.id.as_str())
        .collect();
    if !silent.is_empty() {
        a.gaps.push(format!(
            "{} enrolled device(s) never sent a signed version report: {}",
            silent.len(),
            silent.join(", ")
        ));
    }
    for c in &e.campaigns {
        let mut l = c.latencies_ms.clone();
        l.sort_unstable();
        let stat = |q| quantile(&l, q).map_or_else(|| "n/a".to_owned(), hours);
        a.facts.push(format!(
            "campaign {} ({} {}): {}; {} device(s), {} succeeded, {} failed; patch latency median {}, p90 {}, max {}",
            c.id,
            c.target,
            c.version,
            c.status,
            c.devices,
            l.len(),
            c.failed,
            stat(0.5),
            stat(0.9),
            stat(1.0)
        ));
        if c.status == "halted" {
            a.warnings.push(format!(
                "campaign {} halted after failures: its release did not reach the fleet",
                c.id
            ));
        }
    }
    if e.campaigns.is_empty() {
        a.warnings.push("no update campaign has run".into());
    }
    a
}

pub(super) fn certificates(e: &Evidence) -> Assessment {
    let mut a = Assessment::default();
    let enrolled: Vec<&DeviceFacts> = e.devices.iter().filter(|d| d.state == "enrolled").collect();
    let revoked = e.devices.iter().filter(|d| d.state == "revoked").count();
    a.facts.push(format!(
        "{} enrolled device(s) with fleet certificates (mutual TLS 1.3 on every connection); {revoked} revoked",
        enrolled.len()
    ));
    let mut expired = Vec::new();
    let mut soon = Vec::new();
    for d in &enrolled {
        match d.certificate_not_after_ms {
            None => expired.push(format!("{} (no certificate)", d.id)),
            Some(t) if t <= e.as_of_ms => {
                expired.push(format!("{} (expired {})", d.id, rfc3339(t)))
            }
            Some(t) if t.saturating_sub(e.as_of_ms) <= CERT_WARN_DAYS * DAY_MS => {
                soon.push(format!("{} ({})", d.id, rfc3339(t)));
            }
            Some(_) => {}
        }
    }
    if !expired.is_empty() {
        a.gaps.push(format!(
            "enrolled device(s) without a valid certificate: {}",
            expired.join(", ")
        ));
    }
    if !soon.is_empty() {
        a.warnings.push(format!(
            "certificate(s) expiring within {CERT_WARN_DAYS} days: {}",
            soon.join(", ")
        ));
    }
    a
}

pub(super) fn audit_log(e: &Evidence) -> Assessment {
    let mut a = Assessment::default();
    a.facts.push(format!(
        "{} entries under {} signed tree heads; root {}",
        e.audit.entries, e.audit.heads, e.audit.root_hash
    ));
    if e.audit.findings.is_empty() && e.audit.entries > 0 {
        a.facts
            .push("every entry and every signed tree head verifies".into());
    }
    for f in &e.audit.findings {
        a.gaps.push(format!("the audit log does not verify: {f}"));
    }
    if e.audit.entries == 0 {
        a.gaps.push("the audit log is empty".into());
    }
    a
}

pub(super) fn incidents(e: &Evidence) -> Assessment {
    let mut a = Assessment::default();
    let open = e.incidents.iter().filter(|i| i.phase != "closed").count();
    a.facts
        .push(format!("{} incident(s), {open} open", e.incidents.len()));
    for i in &e.incidents {
        a.facts.push(format!(
            "{} ({}, {}): {}; opened {}{}",
            i.id,
            i.severity,
            i.phase,
            i.title,
            rfc3339(i.opened_at_ms),
            i.contained_after_ms
                .map_or_else(String::new, |c| format!(", contained after {}", hours(c)))
        ));
        for c in &i.clocks {
            let Some(due) = c.due_at_ms else {
                a.facts.push(format!(
                    "{}: {} ({}) not yet due: its clock has not started",
                    i.id, c.report, c.basis
                ));
                continue;
            };
            if i.phase == "closed" {
                a.facts
                    .push(format!("{}: {} was due {}", i.id, c.report, rfc3339(due)));
            } else if due < e.as_of_ms {
                a.gaps.push(format!(
                    "{}: {} ({}) was due {} and the incident is still open",
                    i.id,
                    c.report,
                    c.basis,
                    rfc3339(due)
                ));
            } else {
                a.warnings.push(format!(
                    "{}: {} ({}) due {}, in {}",
                    i.id,
                    c.report,
                    c.basis,
                    rfc3339(due),
                    hours(due.saturating_sub(e.as_of_ms))
                ));
            }
        }
    }
    a
}

pub(super) fn support(e: &Evidence) -> Assessment {
    let mut a = Assessment::default();
    let mut replace = Vec::new();
    let mut soon = Vec::new();
    let mut unknown = Vec::new();
    for d in &e.devices {
        match &d.support {
            None => unknown.push(format!("{} ({})", d.id, d.model)),
            Some(s) if s.replace => replace.push(format!("{} ({}: {})", d.id, d.model, s.why)),
            Some(s)
                if s.days_left
                    .is_some_and(|n| n <= crate::inventory::ENDING_SOON_DAYS) =>
            {
                soon.push(format!("{} ({}: {})", d.id, d.model, s.why));
            }
            Some(_) => {}
        }
    }
    a.facts.push(format!(
        "{} device(s): {} supported, {} ending within {} days, {} to replace, {} with no model profile",
        e.devices.len(),
        e.devices.len() - replace.len() - soon.len() - unknown.len(),
        soon.len(),
        crate::inventory::ENDING_SOON_DAYS,
        replace.len(),
        unknown.len()
    ));
    if !replace.is_empty() {
        a.gaps.push(format!(
            "the vendor no longer ships updates; escalate replacement: {}",
            replace.join("; ")
        ));
    }
    if !soon.is_empty() {
        a.warnings
            .push(format!("support ends soon: {}", soon.join("; ")));
    }
    if !unknown.is_empty() {
        a.warnings.push(format!(
            "support unknown (no model profile): {}",
            unknown.join(", ")
        ));
    }
    a
}

pub(super) fn vendors(e: &Evidence) -> Assessment {
    let mut a = Assessment::default();
    for v in &e.vendors {
        let terms = match (v.critical_patch_days, v.vulnerability_notice_days) {
            (None, None) => "no contract security terms".to_owned(),
            (p, n) => format!(
                "critical fix within {} days, vulnerability notice within {} days",
                p.map_or_else(|| "?".to_owned(), |d| d.to_string()),
                n.map_or_else(|| "?".to_owned(), |d| d.to_string())
            ),
        };
        a.facts.push(format!("{}: {terms}", v.vendor));
        if !v.has_record {
            a.gaps.push(format!(
                "{}: models name this vendor but the registry has no record of it",
                v.vendor
            ));
            continue;
        }
        if v.critical_patch_days.is_none() {
            a.warnings.push(format!(
                "{}: the contract sets no time to a critical fix",
                v.vendor
            ));
        }
        if !v.security_contact {
            a.warnings
                .push(format!("{}: no security contact recorded", v.vendor));
        }
        for (model, kinds) in &v.missing_documents {
            if !kinds.is_empty() {
                a.warnings.push(format!(
                    "{} {model}: not received: {}",
                    v.vendor,
                    kinds.join(", ")
                ));
            }
        }
    }
    if e.vendors.is_empty() {
        a.warnings.push("the vendor registry is empty".into());
    }
    a
}

pub(super) fn access(e: &Evidence) -> Assessment {
    let mut a = Assessment::default();
    a.facts.push(format!(
        "{} Cedar policies decide every request (default deny): {}",
        e.access.policies.len(),
        e.access.policies.join(", ")
    ));
    a.facts.push(format!(
        "{} entries in the audit log record the decisions and refusals",
        e.access.audit_entries
    ));
    if e.access.policies.is_empty() {
        a.gaps.push("no policy is in force".into());
    }
    a
}

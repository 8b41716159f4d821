//! What the inventory knows about a device that the device cannot tell: its model's
//! vendor, clinical impact class, network reach and vendor support (status, end-of-support
//! date), the model's MDS2 security capability answers, and the vendor registry (security
//! documents received, contract security terms).
//!
//! A model profile is per model, because vendor support, intended use and MDS2 answers are
//! properties of a product. Network reach and segmentation are the fleet's deployment of that
//! model; they are kept with the profile as the fleet's default and can be overridden per
//! query. [`support`] says whether the vendor still ships updates; a device whose vendor no
//! longer does is flagged for replacement, and its findings score as unfixable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::score::{Clinical, Exposure};

/// Longest free-text field, in bytes.
pub const MAX_TEXT_BYTES: usize = 2048;
/// Most documents one vendor's record lists.
pub const MAX_DOCUMENTS: usize = 256;
/// A support end this close (days) is reported as ending soon.
pub const ENDING_SOON_DAYS: i64 = 180;

/// Why a profile or a vendor record was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssetError {
    /// Not the documented form.
    #[error("{what} is not valid: {reason}")]
    Invalid {
        /// Which record.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A vendor's support for a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SupportStatus {
    /// Feature and security updates.
    Supported,
    /// Security updates only.
    SecurityOnly,
    /// No more updates of any kind.
    EndOfSupport,
}

/// Support terms of a model, as the FDA asks manufacturers to state them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Support {
    /// Current status.
    pub status: SupportStatus,
    /// The last day the vendor ships updates (`YYYY-MM-DD`), if announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_support: Option<String>,
    /// Level of support in the vendor's words (e.g. "security patches within 30 days").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
}

/// The sections of the MDS2 form (Manufacturer Disclosure Statement for Medical Device
/// Security, ANSI/NEMA HN 1-2019), by their codes.
#[allow(clippy::upper_case_acronyms, missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mds2Section {
    /// Management of personally identifiable information.
    MPII,
    /// Automatic logoff.
    ALOF,
    /// Audit controls.
    AUDT,
    /// Authorization.
    AUTH,
    /// Cyber security product upgrades.
    CSUP,
    /// Health data de-identification.
    DIDT,
    /// Data backup and disaster recovery.
    DTBK,
    /// Emergency access.
    EMRG,
    /// Health data integrity and authenticity.
    IGAU,
    /// Malware detection and protection.
    MLDP,
    /// Node authentication.
    NAUT,
    /// Connectivity capabilities.
    CONN,
    /// Person authentication.
    PAUT,
    /// Physical locks.
    PLOK,
    /// Roadmap for third-party components in the device life cycle.
    RDMP,
    /// Software bill of materials.
    SBOM,
    /// System and application hardening.
    SAHD,
    /// Security guidance.
    SGUD,
    /// Health data storage confidentiality.
    STCF,
    /// Transmission confidentiality.
    TXCF,
    /// Transmission integrity.
    TXIG,
    /// Remote service.
    RMOT,
}

/// An MDS2 answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    /// The capability is present.
    Yes,
    /// It is not.
    No,
    /// It does not apply to the device.
    NotApplicable,
}

/// One MDS2 section's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mds2Entry {
    /// The answer.
    pub answer: Answer,
    /// The vendor's note.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// What the fleet knows about one device model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelProfile {
    /// The vendor (a key of the vendor registry).
    pub vendor: String,
    /// Clinical impact class of its intended use.
    pub clinical: Clinical,
    /// Its network reach as deployed in this fleet.
    pub exposure: Exposure,
    /// Whether it sits on a filtering segment as deployed.
    #[serde(default)]
    pub segmented: bool,
    /// Vendor support.
    pub support: Support,
    /// MDS2 answers, by section.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mds2: BTreeMap<Mds2Section, Mds2Entry>,
    /// The hardware ids its firmware is built for (the image repository's `hardware_id`s).
    /// When given, a device of this model that enrols saying another is refused, with these
    /// named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hardware_ids: Vec<String>,
}

/// Kinds of security documentation a vendor provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocumentKind {
    /// A software bill of materials.
    Sbom,
    /// An MDS2 form.
    Mds2,
    /// A coordinated vulnerability disclosure policy.
    DisclosurePolicy,
    /// Security guidance for deployment (hardening, network requirements).
    SecurityGuidance,
    /// A penetration test summary.
    PenetrationTest,
}

impl DocumentKind {
    /// The kinds every vendor is asked for.
    pub const EXPECTED: [DocumentKind; 3] = [Self::Sbom, Self::Mds2, Self::DisclosurePolicy];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sbom => "sbom",
            Self::Mds2 => "mds2",
            Self::DisclosurePolicy => "disclosure-policy",
            Self::SecurityGuidance => "security-guidance",
            Self::PenetrationTest => "penetration-test",
        }
    }
}

/// A security document received from a vendor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityDocument {
    /// What it is.
    pub kind: DocumentKind,
    /// When it was received (`YYYY-MM-DD`).
    pub received: String,
    /// The model it is about (none: all the vendor's models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Where it is kept, or its title and version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reference: String,
}

/// Security terms of the purchase or service contract.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// Days within which the vendor ships a fix for a critical vulnerability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_patch_days: Option<u32>,
    /// Days within which the vendor tells the hospital of a vulnerability it learns of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vulnerability_notice_days: Option<u32>,
    /// Whether an SBOM comes with every release.
    #[serde(default)]
    pub sbom_per_release: bool,
    /// The last day of contracted support (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_until: Option<String>,
    /// Anything else.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
}

/// A vendor's record in the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vendor {
    /// Where to report a vulnerability or ask about one (address or URL).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub security_contact: String,
    /// Security documents received.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub documents: Vec<SecurityDocument>,
    /// Contract security terms.
    #[serde(default)]
    pub contract: Contract,
}

/// A day, as days since 1970-01-01.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// Reads `YYYY-MM-DD` as days since 1970-01-01.
pub fn parse_date(text: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(text, format).ok()?;
    Some(i64::from(d.to_julian_day()) - 2_440_588)
}

/// Writes days since 1970-01-01 as `YYYY-MM-DD`.
pub fn format_date(day: i64) -> String {
    i32::try_from(day + 2_440_588)
        .ok()
        .and_then(|j| time::Date::from_julian_day(j).ok())
        .map_or_else(|| day.to_string(), |d| d.to_string())
}

fn text(
    what: &'static str,
    field: &str,
    value: &str,
    may_be_empty: bool,
) -> Result<(), AssetError> {
    let bad = |reason: String| Err(AssetError::Invalid { what, reason });
    if value.is_empty() && !may_be_empty {
        return bad(format!("{field} is empty"));
    }
    if value.len() > MAX_TEXT_BYTES {
        return bad(format!("{field} is longer than {MAX_TEXT_BYTES} bytes"));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return bad(format!("{field} contains a control character"));
    }
    Ok(())
}

fn date(what: &'static str, field: &str, value: &str) -> Result<(), AssetError> {
    if parse_date(value).is_none() {
        return Err(AssetError::Invalid {
            what,
            reason: format!("{field} {value:?} is not a date (YYYY-MM-DD)"),
        });
    }
    Ok(())
}

impl ModelProfile {
    /// Reads and checks a profile.
    pub fn parse(bytes: &[u8]) -> Result<Self, AssetError> {
        let p: Self = serde_json::from_slice(bytes).map_err(|e| AssetError::Invalid {
            what: "model profile",
            reason: e.to_string(),
        })?;
        p.check()?;
        Ok(p)
    }

    /// Checks the fields serde cannot: names, dates, text.
    pub fn check(&self) -> Result<(), AssetError> {
        const W: &str = "model profile";
        text(W, "vendor", &self.vendor, false)?;
        if let Some(d) = &self.support.end_of_support {
            date(W, "support.end_of_support", d)?;
        }
        if let Some(l) = &self.support.level {
            text(W, "support.level", l, false)?;
        }
        for (section, entry) in &self.mds2 {
            text(W, &format!("mds2.{section:?}.note"), &entry.note, true)?;
        }
        Ok(())
    }
}

impl Vendor {
    /// Reads and checks a vendor record.
    pub fn parse(bytes: &[u8]) -> Result<Self, AssetError> {
        let v: Self = serde_json::from_slice(bytes).map_err(|e| AssetError::Invalid {
            what: "vendor record",
            reason: e.to_string(),
        })?;
        v.check()?;
        Ok(v)
    }

    /// Checks the fields serde cannot.
    pub fn check(&self) -> Result<(), AssetError> {
        const W: &str = "vendor record";
        text(W, "security_contact", &self.security_contact, true)?;
        if self.documents.len() > MAX_DOCUMENTS {
            return Err(AssetError::Invalid {
                what: W,
                reason: format!(
                    "it lists {} documents; at most {MAX_DOCUMENTS}",
                    self.documents.len()
                ),
            });
        }
        for (i, d) in self.documents.iter().enumerate() {
            date(W, &format!("documents[{i}].received"), &d.received)?;
            text(W, &format!("documents[{i}].reference"), &d.reference, true)?;
            if let Some(m) = &d.model {
                text(W, &format!("documents[{i}].model"), m, false)?;
            }
        }
        if let Some(d) = &self.contract.support_until {
            date(W, "contract.support_until", d)?;
        }
        text(W, "contract.notes", &self.contract.notes, true)?;
        Ok(())
    }

    /// The expected documents (SBOM, MDS2, disclosure policy) not received for `model`: one
    /// about the model or about all the vendor's models counts.
    pub fn missing_documents(&self, model: &str) -> Vec<DocumentKind> {
        DocumentKind::EXPECTED
            .into_iter()
            .filter(|kind| {
                !self
                    .documents
                    .iter()
                    .any(|d| d.kind == *kind && d.model.as_deref().is_none_or(|m| m == model))
            })
            .collect()
    }
}

/// Whether a model still gets updates, on a given day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupportState {
    /// The vendor.
    pub vendor: String,
    /// The status the profile states.
    pub status: SupportStatus,
    /// The first day without updates, from the profile or the contract, whichever is
    /// earlier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_of_support: Option<String>,
    /// Days until then (negative: past).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_left: Option<i64>,
    /// Whether the vendor still ships updates.
    pub ships_updates: bool,
    /// The vendor no longer ships updates: escalate the device's replacement.
    pub replace: bool,
    /// Why, in one sentence.
    pub why: String,
}

/// The support of `profile`'s model on `today` (days since 1970-01-01), with the vendor's
/// contract if the registry has one.
pub fn support(profile: &ModelProfile, vendor: Option<&Vendor>, today: i64) -> SupportState {
    let dates = [
        profile
            .support
            .end_of_support
            .as_deref()
            .and_then(parse_date)
            .map(|d| (d, "the vendor's end-of-support date")),
        vendor
            .and_then(|v| v.contract.support_until.as_deref())
            .and_then(parse_date)
            .map(|d| (d, "the end of contracted support")),
    ];
    let end = dates.into_iter().flatten().min_by_key(|(d, _)| *d);
    let days_left = end.map(|(d, _)| d - today);
    let (ships, why) = match (profile.support.status, end) {
        (SupportStatus::EndOfSupport, _) => (
            false,
            format!("{} no longer ships updates for it", profile.vendor),
        ),
        (_, Some((d, basis))) if d < today => {
            (false, format!("{basis}, {}, has passed", format_date(d)))
        }
        (_, Some((d, basis))) if d - today <= ENDING_SOON_DAYS => (
            true,
            format!(
                "supported; {basis} is {} ({} days)",
                format_date(d),
                d - today
            ),
        ),
        (s, _) => (
            true,
            match s {
                SupportStatus::SecurityOnly => "security updates only".to_owned(),
                _ => "supported".to_owned(),
            },
        ),
    };
    SupportState {
        vendor: profile.vendor.clone(),
        status: profile.support.status,
        end_of_support: end.map(|(d, _)| format_date(d)),
        days_left,
        ships_updates: ships,
        replace: !ships,
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(status: &str, eos: Option<&str>) -> ModelProfile {
        let mut v = serde_json::json!({
            "vendor": "Acme Medical",
            "clinical": "therapy",
            "exposure": "network",
            "support": {"status": status},
            "mds2": {"SBOM": {"answer": "yes"}, "RMOT": {"answer": "no", "note": "no remote service"}}
        });
        if let (Some(d), Some(s)) = (eos, v.get_mut("support")) {
            *s = serde_json::json!({"status": status, "end_of_support": d});
        }
        ModelProfile::parse(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn dates_read_and_write_back() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2026-12-03"), Some(day_of(1_796_256_000_000)));
        assert_eq!(format_date(parse_date("2027-02-28").unwrap()), "2027-02-28");
        for bad in ["2026-02-30", "26-12-03", "2026-12-3", "", "tomorrow"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn support_ends_by_status_date_or_contract() {
        let today = parse_date("2026-12-03").unwrap();
        let s = support(&profile("supported", None), None, today);
        assert!(s.ships_updates && !s.replace, "{s:?}");
        let s = support(&profile("end-of-support", None), None, today);
        assert!(s.replace, "{s:?}");
        assert!(s.why.contains("no longer ships"), "{}", s.why);
        let s = support(&profile("supported", Some("2026-12-02")), None, today);
        assert!(s.replace && s.days_left == Some(-1), "{s:?}");
        assert!(s.why.contains("2026-12-02, has passed"), "{}", s.why);
        let s = support(&profile("supported", Some("2027-03-01")), None, today);
        assert!(s.ships_updates && s.why.contains("88 days"), "{s:?}");
        // The contract ending first counts.
        let vendor = Vendor {
            contract: Contract {
                support_until: Some("2026-01-31".into()),
                ..Contract::default()
            },
            ..Vendor::default()
        };
        let s = support(
            &profile("supported", Some("2030-01-01")),
            Some(&vendor),
            today,
        );
        assert!(s.replace, "{s:?}");
        assert_eq!(s.end_of_support.as_deref(), Some("2026-01-31"));
        assert!(s.why.contains("contracted support"), "{}", s.why);
    }

    #[test]
    fn bad_profiles_and_vendors_are_refused_by_name() {
        let refused = |body: &str, what: &str| {
            let e = ModelProfile::parse(body.as_bytes())
                .err()
                .or_else(|| Vendor::parse(body.as_bytes()).err())
                .unwrap_or_else(|| panic!("accepted {body}"));
            assert!(e.to_string().contains(what), "{e} lacks {what}");
        };
        let base = r#""vendor":"Acme","clinical":"therapy","exposure":"network""#;
        refused(
            &format!(r#"{{{base},"support":{{"status":"forever"}}}}"#),
            "forever",
        );
        refused(
            &format!(
                r#"{{{base},"support":{{"status":"supported","end_of_support":"2026-13-01"}}}}"#
            ),
            "support.end_of_support \"2026-13-01\" is not a date",
        );
        refused(
            &format!(
                r#"{{{base},"support":{{"status":"supported"}},"mds2":{{"XXXX":{{"answer":"yes"}}}}}}"#
            ),
            "XXXX",
        );
        refused(
            &format!(r#"{{{base},"support":{{"status":"supported"}},"colour":"red"}}"#),
            "colour",
        );
        refused(
            r#"{"vendor":"","clinical":"therapy","exposure":"network","support":{"status":"supported"}}"#,
            "vendor is empty",
        );
        assert!(
            Vendor::parse(br#"{"documents":[{"kind":"sbom","received":"yesterday"}]}"#)
                .unwrap_err()
                .to_string()
                .contains("documents[0].received \"yesterday\" is not a date")
        );
        assert!(Vendor::parse(br#"{"contract":{"critical_patch_days":-1}}"#).is_err());
    }

    #[test]
    fn missing_documents_count_model_specific_and_vendor_wide_ones() {
        let v = Vendor::parse(
            br#"{"documents":[
                {"kind":"sbom","received":"2026-01-01","model":"ip200"},
                {"kind":"disclosure-policy","received":"2026-01-01"}]}"#,
        )
        .unwrap();
        assert_eq!(v.missing_documents("ip200"), vec![DocumentKind::Mds2]);
        assert_eq!(
            v.missing_documents("ip300"),
            vec![DocumentKind::Sbom, DocumentKind::Mds2]
        );
    }
}

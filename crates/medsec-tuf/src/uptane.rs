//! Uptane-style agreement between the two repositories a device trusts.
//!
//! The **image repository** (offline keys) says which images exist and what they are: length,
//! hashes, the hardware ids they are built for, their version and release counter
//! (`custom.medsec`). The **director** (online keys, on the server) says which image one device must
//! install now, in per-device targets metadata whose `custom.medsec` names that device's hardware
//! id and the release counter. A device installs only what both say, and only when they agree.
//!
//! What each check stops, if the director's online key is stolen:
//! - the image must be in the image repository: an image the release engineers never signed;
//! - length and every common hash must match, with at least one common hash: a different file
//!   under a signed name (the image repository's hashes are what the download is checked
//!   against);
//! - the director's hardware id must be the device's own, and among the image's: firmware built
//!   for another board;
//! - the release counter must match the image's and not be below the device's: a rollback to an
//!   older, vulnerable, but genuinely signed release.
//!
//! Both sets of metadata must already have been verified (signatures, expiry, versions) by
//! [`crate::TrustedSet`]; this module compares what they say.

use serde_json::Value;

use crate::TargetFile;

/// Why a director target may not be installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Disagreement {
    /// The image repository does not list the target.
    #[error(
        "the director names target {target:?}, which the image repository does not sign: refused"
    )]
    NotInImageRepository {
        /// Target name.
        target: String,
    },
    /// The lengths differ.
    #[error("target {target:?}: the director says {director} bytes, the image repository {image}")]
    Length {
        /// Target name.
        target: String,
        /// Director's length.
        director: u64,
        /// Image repository's length.
        image: u64,
    },
    /// A hash both list differs, or they list no hash in common.
    #[error("target {target:?}: {reason}")]
    Hashes {
        /// Target name.
        target: String,
        /// Which hash.
        reason: String,
    },
    /// `custom.medsec` is missing or malformed in one of them.
    #[error("target {target:?}: the {repository} metadata {reason}")]
    Custom {
        /// Target name.
        target: String,
        /// "director" or "image repository".
        repository: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The hardware id is not this device's, or the image is not built for it.
    #[error("target {target:?}: {reason} (this device is {device:?})")]
    HardwareId {
        /// Target name.
        target: String,
        /// This device's hardware id.
        device: String,
        /// Which side disagrees.
        reason: String,
    },
    /// The release counters differ, or the release is older than what the device runs.
    #[error("target {target:?}: {reason}")]
    ReleaseCounter {
        /// Target name.
        target: String,
        /// What is wrong.
        reason: String,
    },
}

/// What a device may install, once both repositories agree.
#[derive(Debug, Clone, PartialEq)]
pub struct Approved {
    /// Target name.
    pub target: String,
    /// The image repository's entry (what the download is checked against).
    pub info: TargetFile,
    /// Version string of the image.
    pub version: String,
    /// Its release counter.
    pub release_counter: u64,
}

fn medsec_custom<'a>(
    info: &'a TargetFile,
    target: &str,
    repository: &'static str,
) -> Result<&'a serde_json::Map<String, Value>, Disagreement> {
    info.custom
        .as_ref()
        .and_then(|c| c.get("medsec"))
        .and_then(Value::as_object)
        .ok_or_else(|| Disagreement::Custom {
            target: target.to_owned(),
            repository,
            reason: "has no custom.medsec object".into(),
        })
}

fn counter(
    m: &serde_json::Map<String, Value>,
    target: &str,
    repository: &'static str,
) -> Result<u64, Disagreement> {
    m.get("release_counter")
        .and_then(Value::as_u64)
        .ok_or_else(|| Disagreement::Custom {
            target: target.to_owned(),
            repository,
            reason: "has no non-negative integer release_counter".into(),
        })
}

/// Checks a director target against the image repository's entry for the same name (`None`:
/// the image repository has no such target), for a device with `hardware_id` that runs release
/// `installed_counter`. Installing the same release again (equal counter) is allowed, so that
/// a device can repair a damaged slot; anything lower is refused.
pub fn agree(
    target: &str,
    director: &TargetFile,
    image: Option<&TargetFile>,
    hardware_id: &str,
    installed_counter: u64,
) -> Result<Approved, Disagreement> {
    let image = image.ok_or_else(|| Disagreement::NotInImageRepository {
        target: target.to_owned(),
    })?;
    if director.length != image.length {
        return Err(Disagreement::Length {
            target: target.to_owned(),
            director: director.length,
            image: image.length,
        });
    }
    let mut common = 0;
    for (algorithm, digest) in &director.hashes {
        if let Some(theirs) = image.hashes.get(algorithm) {
            if !digest.eq_ignore_ascii_case(theirs) {
                return Err(Disagreement::Hashes {
                    target: target.to_owned(),
                    reason: format!("the {algorithm} hashes differ"),
                });
            }
            common += 1;
        }
    }
    if common == 0 {
        return Err(Disagreement::Hashes {
            target: target.to_owned(),
            reason: "the director and the image repository list no hash algorithm in common".into(),
        });
    }
    let d = medsec_custom(director, target, "director")?;
    let i = medsec_custom(image, target, "image repository")?;
    let hw = |reason: String| Disagreement::HardwareId {
        target: target.to_owned(),
        device: hardware_id.to_owned(),
        reason,
    };
    match d.get("hardware_id").and_then(Value::as_str) {
        Some(h) if h == hardware_id => {}
        Some(h) => return Err(hw(format!("the director names hardware id {h:?}"))),
        None => return Err(hw("the director names no hardware_id".into())),
    }
    let built_for = i
        .get("hardware_ids")
        .and_then(Value::as_array)
        .is_some_and(|ids| ids.iter().any(|h| h.as_str() == Some(hardware_id)));
    if !built_for {
        return Err(hw(
            "the image repository does not list this hardware id for the image".into(),
        ));
    }
    let director_counter = counter(d, target, "director")?;
    let image_counter = counter(i, target, "image repository")?;
    if director_counter != image_counter {
        return Err(Disagreement::ReleaseCounter {
            target: target.to_owned(),
            reason: format!(
                "the director says release counter {director_counter}, the image repository \
                 {image_counter}"
            ),
        });
    }
    if image_counter < installed_counter {
        return Err(Disagreement::ReleaseCounter {
            target: target.to_owned(),
            reason: format!(
                "release counter {image_counter} is below the installed {installed_counter}: \
                 a rollback, refused"
            ),
        });
    }
    let version = i
        .get("version")
        .and_then(Value::as_str)
        .ok_or_else(|| Disagreement::Custom {
            target: target.to_owned(),
            repository: "image repository",
            reason: "has no version".into(),
        })?
        .to_owned();
    Ok(Approved {
        target: target.to_owned(),
        info: image.clone(),
        version,
        release_counter: image_counter,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    const H: &str = "aa11";

    fn image() -> TargetFile {
        TargetFile {
            length: 100,
            hashes: BTreeMap::from([("sha256".into(), H.into()), ("sha512".into(), "bb".into())]),
            custom: Some(json!({"medsec": {
                "hardware_ids": ["pump-rev-b", "pump-rev-c"],
                "version": "1.2.0",
                "release_counter": 12,
            }})),
        }
    }

    fn director() -> TargetFile {
        TargetFile {
            length: 100,
            hashes: BTreeMap::from([("sha256".into(), H.into())]),
            custom: Some(json!({"medsec": {"hardware_id": "pump-rev-b", "release_counter": 12}})),
        }
    }

    #[test]
    fn agreeing_repositories_approve_the_image_repositorys_entry() {
        let ok = agree("fw.bin", &director(), Some(&image()), "pump-rev-b", 11).unwrap();
        assert_eq!(ok.info, image());
        assert_eq!(ok.version, "1.2.0");
        assert_eq!(ok.release_counter, 12);
        // The same release again (slot repair) is allowed.
        agree("fw.bin", &director(), Some(&image()), "pump-rev-b", 12).unwrap();
    }

    #[test]
    fn a_target_the_image_repository_does_not_sign_is_refused() {
        let e = agree("evil.bin", &director(), None, "pump-rev-b", 0).unwrap_err();
        assert!(
            matches!(e, Disagreement::NotInImageRepository { .. }),
            "{e}"
        );
    }

    #[test]
    fn a_different_file_under_a_signed_name_is_refused() {
        let mut d = director();
        d.length = 101;
        assert!(matches!(
            agree("fw.bin", &d, Some(&image()), "pump-rev-b", 0),
            Err(Disagreement::Length { .. })
        ));
        let mut d = director();
        d.hashes.insert("sha256".into(), "cc".into());
        assert!(matches!(
            agree("fw.bin", &d, Some(&image()), "pump-rev-b", 0),
            Err(Disagreement::Hashes { .. })
        ));
        // No hash in common: nothing ties the two entries together.
        let mut d = director();
        d.hashes = BTreeMap::from([("sha384".into(), "dd".into())]);
        assert!(matches!(
            agree("fw.bin", &d, Some(&image()), "pump-rev-b", 0),
            Err(Disagreement::Hashes { .. })
        ));
    }

    #[test]
    fn a_rollback_below_the_release_counter_is_refused() {
        let e = agree("fw.bin", &director(), Some(&image()), "pump-rev-b", 13).unwrap_err();
        assert!(e.to_string().contains("rollback"), "{e}");
        // A director that lies about the counter disagrees with the image repository.
        let mut d = director();
        d.custom = Some(json!({"medsec": {"hardware_id": "pump-rev-b", "release_counter": 99}}));
        assert!(matches!(
            agree("fw.bin", &d, Some(&image()), "pump-rev-b", 13),
            Err(Disagreement::ReleaseCounter { .. })
        ));
    }

    #[test]
    fn the_wrong_hardware_id_is_refused() {
        // The director names another board.
        let mut d = director();
        d.custom = Some(json!({"medsec": {"hardware_id": "monitor-x", "release_counter": 12}}));
        assert!(matches!(
            agree("fw.bin", &d, Some(&image()), "pump-rev-b", 0),
            Err(Disagreement::HardwareId { .. })
        ));
        // The director names this board, but the image is not built for it.
        let mut d = director();
        d.custom = Some(json!({"medsec": {"hardware_id": "monitor-x", "release_counter": 12}}));
        let e = agree("fw.bin", &d, Some(&image()), "monitor-x", 0).unwrap_err();
        assert!(e.to_string().contains("does not list"), "{e}");
    }

    #[test]
    fn missing_custom_metadata_is_refused() {
        let mut d = director();
        d.custom = None;
        assert!(matches!(
            agree("fw.bin", &d, Some(&image()), "pump-rev-b", 0),
            Err(Disagreement::Custom {
                repository: "director",
                ..
            })
        ));
        let mut i = image();
        i.custom = Some(json!({"medsec": {"hardware_ids": ["pump-rev-b"], "version": "1"}}));
        assert!(matches!(
            agree("fw.bin", &director(), Some(&i), "pump-rev-b", 0),
            Err(Disagreement::Custom {
                repository: "image repository",
                ..
            })
        ));
    }
}

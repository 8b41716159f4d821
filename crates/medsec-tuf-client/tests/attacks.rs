//! One test per TUF attack class (specification section 1.5.2), plus duplicate signatures and
//! keys, root rotation chains and caps, delegation search rules and crash safety. Every test builds
//! its repository in its own folder named after the attack (see `support`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a failed test"
)]

mod support;

use std::collections::BTreeMap;

use medsec_crypto::{KeySource as _, Scheme};
use medsec_tuf::{Error as TufError, Key, Role};
use medsec_tuf_client::{Error, Limits, UpdaterConfig};
use serde_json::{Value, json};
use support::*;

fn tuf_err(e: Error) -> TufError {
    match e {
        Error::Metadata(m) => m,
        other => panic!("expected a metadata error, got {other:?}"),
    }
}

#[test]
fn a_clean_repository_refreshes_and_downloads() {
    let mut f = Fixture::new("clean");
    f.add_target("targets", "fw/pump.img", b"pump firmware 1.0");
    let mut u = f.updater();
    u.refresh().unwrap();
    let info = u.get_target_info("fw/pump.img").unwrap();
    let dl = f.download_dir();
    let path = u.download_target(&info, "fw/pump.img", &dl, None).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"pump firmware 1.0");
    assert_eq!(path.file_name().unwrap(), "fw%2Fpump.img");
    assert_eq!(
        f.client_files(),
        [
            "root.json",
            "snapshot.json",
            "targets.json",
            "timestamp.json"
        ]
    );
    assert_no_temporaries(&dl);
}

#[test]
fn hybrid_post_quantum_repository_works_end_to_end() {
    let mut f = Fixture::with_scheme("hybrid", Scheme::MlDsa65Ed25519);
    f.add_target("targets", "fw.img", b"pq-signed");
    let mut u = f.updater();
    let info = u.get_target_info("fw.img").unwrap();
    u.download_target(&info, "fw.img", &f.download_dir(), None)
        .unwrap();
}

// --- arbitrary installation -------------------------------------------------------------------

#[test]
fn arbitrary_installation_of_a_replaced_artifact_is_refused() {
    let mut f = Fixture::new("arbitrary-installation");
    f.add_target("targets", "fw.img", b"genuine firmware");
    std::fs::write(f.artifact_path("fw.img"), b"malicious firmware").unwrap();
    let mut u = f.updater();
    let info = u.get_target_info("fw.img").unwrap();
    let dl = f.download_dir();
    let err = tuf_err(u.download_target(&info, "fw.img", &dl, None).unwrap_err());
    assert!(matches!(err, TufError::TooLong { limit: 16, .. }), "{err}");
    // Same length, different bytes: the hash catches it.
    std::fs::write(f.artifact_path("fw.img"), b"GENUINE FIRMWARE").unwrap();
    let err = tuf_err(u.download_target(&info, "fw.img", &dl, None).unwrap_err());
    assert!(matches!(err, TufError::HashMismatch { .. }), "{err}");
    assert!(
        std::fs::read_dir(&dl).unwrap().next().is_none(),
        "nothing stored"
    );
}

#[test]
fn arbitrary_installation_with_targets_signed_by_an_unknown_key_is_refused() {
    let mut f = Fixture::new("arbitrary-installation-unknown-key");
    f.targets_keys = vec![key(Scheme::Ed25519)];
    f.add_target("targets", "fw.img", b"evil");
    let err = tuf_err(f.updater().refresh().unwrap_err());
    assert!(
        matches!(err, TufError::ThresholdNotMet { valid: 0, .. }),
        "{err}"
    );
}

#[test]
fn metadata_edited_after_signing_is_refused() {
    let mut f = Fixture::new("edited-metadata");
    f.add_target("targets", "fw.img", b"genuine");
    let name = format!("{}.targets.json", f.targets.version);
    let mut doc: Value = serde_json::from_slice(&f.read_meta(&name)).unwrap();
    doc["signed"]["targets"]["fw.img"]["length"] = json!(4);
    f.write_meta(&name, &serde_json::to_vec(&doc).unwrap());
    let err = tuf_err(f.updater().refresh().unwrap_err());
    assert!(matches!(err, TufError::ThresholdNotMet { .. }), "{err}");
}

#[test]
fn unknown_fields_are_covered_by_the_signature_and_kept() {
    let mut f = Fixture::new("unrecognized-fields");
    f.targets
        .unrecognized
        .insert("x-vendor".into(), json!({"note": "kept"}));
    f.targets.version += 1;
    f.publish_targets_role("targets");
    f.release();
    let mut u = f.updater();
    u.refresh().unwrap();
    assert_eq!(
        u.trusted().targets("targets").unwrap().unrecognized["x-vendor"]["note"],
        "kept"
    );
}

// --- rollback -----------------------------------------------------------------------------------

#[test]
fn rollback_of_timestamp_is_refused() {
    let mut f = Fixture::new("rollback-timestamp");
    let old = f.read_meta("timestamp.json");
    f.release();
    f.updater().refresh().unwrap();
    assert_eq!(f.client_version("timestamp"), Some(2));
    f.write_meta("timestamp.json", &old);
    let err = tuf_err(f.updater().refresh().unwrap_err());
    assert!(
        matches!(err, TufError::BadVersion { found: 1, .. }),
        "{err}"
    );
    assert_eq!(f.client_version("timestamp"), Some(2), "trusted state kept");
}

#[test]
fn rollback_of_snapshot_through_a_new_timestamp_is_refused() {
    let mut f = Fixture::new("rollback-snapshot");
    f.release();
    f.updater().refresh().unwrap();
    // A newer timestamp that points at an older snapshot.
    f.timestamp.version += 1;
    let old_snapshot = f.read_meta("1.snapshot.json");
    f.timestamp.meta.insert(
        "snapshot.json".into(),
        medsec_tuf::MetaFile {
            version: 1,
            length: Some(old_snapshot.len() as u64),
            hashes: None,
        },
    );
    f.publish_timestamp();
    let err = tuf_err(f.updater().refresh().unwrap_err());
    assert!(
        matches!(err, TufError::BadVersion { found: 1, .. }),
        "{err}"
    );
}

#[test]
fn rollback_of_targets_through_a_new_snapshot_is_refused() {
    let mut f = Fixture::new("rollback-targets");
    f.add_target("targets", "a", b"a");
    f.updater().refresh().unwrap();
    let trusted_targets = f.targets.version;
    // New snapshot that lists an older targets version.
    f.snapshot.meta.get_mut("targets.json").unwrap().version = trusted_targets - 1;
    f.release();
    let err = tuf_err(f.updater().refresh().unwrap_err());
    assert!(matches!(err, TufError::BadVersion { .. }), "{err}");
}

#[test]
fn snapshot_that_drops_a_role_is_refused() {
    let mut f = Fixture::new("rollback-dropped-role");
    f.delegate("targets", "vendor", &["vendor/*"], false);
    f.updater().refresh().unwrap();
    f.snapshot.meta.remove("vendor.json");
    f.release();
    let err = tuf_err(f.updater().refresh().unwrap_err());
    assert!(matches!(err, TufError::MissingFromSnapshot { .. }), "{err}");
}

// --- fast-forward -------------------------------------------------------------------------------

#[test]
fn fast_forward_recovery_after_timestamp_key_rotation() {
    let mut f = Fixture::new("fast-forward");
    f.updater().refresh().unwrap();
    // An attacker with the timestamp key fast-forwards the client to version 1000.
    f.timestamp.version = 1000;
    f.publish_timestamp();
    f.updater().refresh().unwrap();
    assert_eq!(f.client_version("timestamp"), Some(1000));
    // The repository rotates the timestamp key in root v2 and continues at a normal version.
    f.timestamp.version = 2;
    rotate_timestamp_key(&mut f);
    // Before recovery the same attack would be a rollback; with the key rotated it is accepted.
    f.updater().refresh().unwrap();
    assert_eq!(f.client_version("timestamp"), Some(3));
    assert_eq!(f.client_version("root"), Some(2));
}

/// Root v2 rotates the timestamp key, and a timestamp signed with the new key is published.
fn rotate_timestamp_key(f: &mut Fixture) {
    let new_key = key(Scheme::Ed25519);
    let old_id = keyid(&f.timestamp_keys[0]);
    f.root.keys.remove(&old_id);
    f.root
        .keys
        .insert(keyid(&new_key), Key::from_public(new_key.public_key()));
    f.root
        .roles
        .insert("timestamp".into(), Role::new(vec![keyid(&new_key)], 1));
    f.root.version += 1;
    f.publish_root();
    f.timestamp_keys = vec![new_key];
    f.timestamp.version += 1;
    f.publish_timestamp();
}

fn announcing(f: &Fixture, announce: Option<u64>) -> Announcing {
    Announcing {
        urls: Default::default(),
        metadata: f.meta_dir(),
        announce,
    }
}

fn names(urls: &std::sync::Mutex<Vec<String>>) -> Vec<String> {
    urls.lock()
        .unwrap()
        .iter()
        .map(|u| u.rsplit('/').next().unwrap().to_owned())
        .collect()
}

/// The configuration under which an announced root version spares the root probe.
fn trusting_announcements() -> UpdaterConfig {
    UpdaterConfig {
        trust_announced_root_version: true,
        ..UpdaterConfig::default()
    }
}

#[test]
fn every_refresh_follows_the_specification_order_root_probe_first() {
    let mut f = Fixture::new("spec-order");
    f.updater().refresh().unwrap();
    // A plain refresh with nothing new: 5.3 root N+1 (not found), then 5.4 the timestamp.
    let rec = Recording::default();
    f.updater_over(Box::new(rec.clone()), UpdaterConfig::default())
        .refresh()
        .unwrap();
    assert_eq!(names(&rec.urls), ["2.root.json", "timestamp.json"]);
    // A server announcing "no newer root" does not change the order by default.
    let t = announcing(&f, Some(1));
    f.updater_over(Box::new(t.clone()), UpdaterConfig::default())
        .refresh()
        .unwrap();
    assert_eq!(names(&t.urls), ["2.root.json", "timestamp.json"]);
    // A new release: root, timestamp, snapshot, targets, in that order.
    f.release();
    let rec = Recording::default();
    f.updater_over(Box::new(rec.clone()), UpdaterConfig::default())
        .refresh()
        .unwrap();
    let seen = names(&rec.urls);
    let roles: Vec<&str> = seen
        .iter()
        .map(|n| {
            n.trim_end_matches(".json")
                .rsplit('.')
                .next()
                .unwrap_or_default()
        })
        .collect();
    // (The top-level targets are fetched only when the snapshot names a new version.)
    assert!(
        roles.starts_with(&["root", "timestamp", "snapshot"])
            && roles[3..].iter().all(|r| *r == "targets"),
        "{seen:?}"
    );
    // A rotated root is walked before the timestamp, which is then verified under it.
    rotate_timestamp_key(&mut f);
    let rec = Recording::default();
    f.updater_over(Box::new(rec.clone()), UpdaterConfig::default())
        .refresh()
        .unwrap();
    assert_eq!(
        names(&rec.urls)[..3],
        ["2.root.json", "3.root.json", "timestamp.json"]
    );
    assert_eq!(f.client_version("root"), Some(2));
}

#[test]
fn an_announced_root_version_makes_a_poll_with_no_change_one_request() {
    let f = Fixture::new("announced-no-change");
    f.updater().refresh().unwrap();
    let t = announcing(&f, None);
    f.updater_over(Box::new(t.clone()), trusting_announcements())
        .refresh()
        .unwrap();
    assert_eq!(names(&t.urls), ["timestamp.json"]);
    // Without an announcement the next root is probed first-hand, as the specification says.
    let rec = Recording::default();
    f.updater_over(Box::new(rec.clone()), trusting_announcements())
        .refresh()
        .unwrap();
    assert_eq!(names(&rec.urls), ["timestamp.json", "2.root.json"]);
}

#[test]
fn an_announced_new_root_is_walked_and_the_timestamp_fetched_again_under_it() {
    let mut f = Fixture::new("announced-rotation");
    f.updater().refresh().unwrap();
    rotate_timestamp_key(&mut f);
    let t = announcing(&f, None);
    f.updater_over(Box::new(t.clone()), trusting_announcements())
        .refresh()
        .unwrap();
    assert_eq!(f.client_version("root"), Some(2));
    assert_eq!(f.client_version("timestamp"), Some(2));
    assert_eq!(
        names(&t.urls)[..4],
        [
            "timestamp.json",
            "2.root.json",
            "3.root.json",
            "timestamp.json"
        ]
    );
}

#[test]
fn an_announcement_that_hides_a_new_root_cannot_make_the_old_root_accept_new_keys() {
    let mut f = Fixture::new("announced-lie-low");
    f.updater().refresh().unwrap();
    rotate_timestamp_key(&mut f);
    // The server says version 1 is the newest: the client keeps root 1, which does not trust the
    // new timestamp key, so the poll fails (a freeze, which a "not found" probe allows too)
    // instead of accepting anything.
    let err = tuf_err(
        f.updater_over(Box::new(announcing(&f, Some(1))), trusting_announcements())
            .refresh()
            .unwrap_err(),
    );
    assert!(matches!(err, TufError::ThresholdNotMet { .. }), "{err}");
    assert_eq!(f.client_version("root"), Some(1));
    assert_eq!(f.client_version("timestamp"), Some(1));
    // An announcement of a root that does not exist walks to "not found" and changes nothing.
    let mut g = Fixture::new("announced-lie-high");
    g.updater().refresh().unwrap();
    g.release();
    g.updater_over(Box::new(announcing(&g, Some(99))), trusting_announcements())
        .refresh()
        .unwrap();
    assert_eq!(g.client_version("root"), Some(1));
    assert_eq!(g.client_version("timestamp"), Some(2));
}

#[test]
fn fast_forward_without_key_rotation_stays_refused() {
    let mut f = Fixture::new("fast-forward-no-rotation");
    f.updater().refresh().unwrap();
    f.timestamp.version = 1000;
    f.publish_timestamp();
    f.updater().refresh().unwrap();
    f.timestamp.version = 3;
    f.publish_timestamp();
    let err = tuf_err(f.updater().refresh().unwrap_err());
    assert!(
        matches!(err, TufError::BadVersion { found: 3, .. }),
        "{err}"
    );
}

// --- indefinite freeze --------------------------------------------------------------------------

#[test]
fn indefinite_freeze_with_expired_timestamp_is_refused() {
    let mut f = Fixture::new("freeze-timestamp");
    f.timestamp.expires = in_days(-1);
    f.timestamp.version += 1;
    f.publish_timestamp();
    let err = tuf_err(f.updater().refresh().unwrap_err());
    assert!(matches!(err, TufError::Expired { .. }), "{err}");
}

#[test]
fn indefinite_freeze_is_caught_at_the_update_start_time() {
    let mut f = Fixture::new("freeze-reference-time");
    f.release();
    let config = UpdaterConfig {
        reference_time: Some(time::OffsetDateTime::now_utc() + time::Duration::days(2)),
        ..Default::default()
    };
    let err = tuf_err(f.updater_with(config).refresh().unwrap_err());
    assert!(
        matches!(err, TufError::Expired { ref role, .. } if role.0 == "timestamp"),
        "{err}"
    );
}

#[test]
fn expired_snapshot_targets_and_root_are_refused() {
    for role in ["snapshot", "targets", "root"] {
        let mut f = Fixture::new(&format!("freeze-{role}"));
        match role {
            "snapshot" => f.snapshot.expires = in_days(-1),
            "targets" => {
                f.targets.expires = in_days(-1);
                f.targets.version += 1;
                f.publish_targets_role("targets");
            }
            _ => {
                f.root.expires = in_days(-1);
                f.root.version += 1;
                f.publish_root();
            }
        }
        f.release();
        let err = tuf_err(f.updater().refresh().unwrap_err());
        assert!(matches!(err, TufError::Expired { .. }), "{role}: {err}");
    }
}

// --- endless data -------------------------------------------------------------------------------

#[test]
fn endless_timestamp_is_cut_at_its_limit() {
    let f = Fixture::new("endless-timestamp");
    f.init_client();
    let mut u = f.updater_over(
        Box::new(Endless {
            needle: "timestamp.json".into(),
        }),
        UpdaterConfig::default(),
    );
    let err = tuf_err(u.refresh().unwrap_err());
    assert!(
        matches!(err, TufError::TooLong { limit: 16_384, .. }),
        "{err}"
    );
}

#[test]
fn endless_root_is_cut_at_its_limit() {
    let f = Fixture::new("endless-root");
    f.init_client();
    let config = UpdaterConfig {
        limits: Limits {
            root_max_length: 1000,
            ..Limits::default()
        },
        ..Default::default()
    };
    let mut u = f.updater_over(
        Box::new(Endless {
            needle: "2.root.json".into(),
        }),
        config,
    );
    let err = tuf_err(u.refresh().unwrap_err());
    assert!(
        matches!(err, TufError::TooLong { limit: 1000, .. }),
        "{err}"
    );
}

#[test]
fn endless_artifact_is_cut_at_its_length_and_nothing_is_stored() {
    let mut f = Fixture::new("endless-artifact");
    f.add_target("targets", "fw.img", b"0123456789");
    f.init_client();
    let mut u = f.updater_over(
        Box::new(Endless {
            needle: "fw.img".into(),
        }),
        UpdaterConfig::default(),
    );
    let info = u.get_target_info("fw.img").unwrap();
    let dl = f.download_dir();
    let err = tuf_err(u.download_target(&info, "fw.img", &dl, None).unwrap_err());
    assert!(matches!(err, TufError::TooLong { limit: 10, .. }), "{err}");
    assert!(std::fs::read_dir(&dl).unwrap().next().is_none());
}

#[test]
fn snapshot_longer_than_timestamp_says_is_refused() {
    let mut f = Fixture::new("endless-snapshot");
    f.release();
    let name = format!("{}.snapshot.json", f.snapshot.version);
    let mut bytes = f.read_meta(&name);
    bytes.extend_from_slice(b"        ");
    f.write_meta(&name, &bytes);
    let err = tuf_err(f.updater().refresh().unwrap_err());
    assert!(matches!(err, TufError::TooLong { .. }), "{err}");
}

// --- mix-and-match ------------------------------------------------------------------------------

#[test]
fn mix_and_match_of_validly_signed_versions_is_refused() {
    let mut f = Fixture::new("mix-and-match");
    f.add_target("targets", "a", b"a");
    let v = f.targets.version;
    let older = f.read_meta(&format!("{}.targets.json", v - 1));
    // The mirror serves an older (validly signed) targets under the current version's name.
    f.write_meta(&format!("{v}.targets.json"), &older);
    let err = tuf_err(f.updater().refresh().unwrap_err());
    assert!(matches!(err, TufError::BadVersion { .. }), "{err}");
}

#[test]
fn snapshot_version_differing_from_timestamp_is_refused() {
    let mut f = Fixture::new("mix-and-match-snapshot");
    f.release();
    // Serve snapshot v1 bytes under v2's name, with timestamp hashes removed so only the version
    // check can catch it.
    let v1 = f.read_meta("1.snapshot.json");
    f.write_meta("2.snapshot.json", &v1);
    f.timestamp.meta.get_mut("snapshot.json").unwrap().hashes = None;
    f.timestamp.meta.get_mut("snapshot.json").unwrap().length = None;
    f.timestamp.version += 1;
    f.publish_timestamp();
    let err = tuf_err(f.updater().refresh().unwrap_err());
    assert!(
        matches!(err, TufError::BadVersion { found: 1, .. }),
        "{err}"
    );
}

// --- malicious mirror ---------------------------------------------------------------------------

#[test]
fn malicious_mirror_serving_metadata_of_another_repository_is_refused() {
    let f = Fixture::new("malicious-mirror");
    let other = Fixture::new("malicious-mirror-other");
    f.init_client();
    let mut u = medsec_tuf_client::Updater::new(
        f.client_dir(),
        &format!("file://{}/", other.meta_dir().display()),
        None,
        Box::new(medsec_tuf_client::FileTransport),
        UpdaterConfig::default(),
    )
    .unwrap();
    let err = tuf_err(u.refresh().unwrap_err());
    assert!(matches!(err, TufError::ThresholdNotMet { .. }), "{err}");
}

#[test]
fn wrong_metadata_type_is_refused() {
    let mut f = Fixture::new("malicious-mirror-type");
    // A validly signed snapshot served as the timestamp (same key signs both here).
    f.snapshot_keys = vec![
        medsec_crypto::SigningKey::from_pkcs8_der(&f.timestamp_keys[0].to_pkcs8_der().unwrap())
            .unwrap(),
    ];
    let bytes = sign_bytes(&f.snapshot, &[&f.timestamp_keys[0]]);
    f.write_meta("timestamp.json", &bytes);
    let err = tuf_err(f.updater().refresh().unwrap_err());
    assert!(matches!(err, TufError::WrongType { .. }), "{err}");
}

// --- wrong software and extraneous dependencies ---------------------------------------------------

#[test]
fn wrong_software_another_signed_target_served_in_place_is_refused() {
    let mut f = Fixture::new("wrong-software");
    f.add_target("targets", "pump.img", b"infusion pump firmware");
    f.add_target("targets", "monitor.img", b"patient monitor firmware");
    std::fs::copy(f.artifact_path("monitor.img"), f.artifact_path("pump.img")).unwrap();
    let mut u = f.updater();
    let info = u.get_target_info("pump.img").unwrap();
    assert!(
        u.download_target(&info, "pump.img", &f.download_dir(), None)
            .is_err()
    );
}

#[test]
fn unknown_target_is_not_found() {
    let f = Fixture::new("wrong-software-unknown");
    let err = f.updater().get_target_info("nope.img").unwrap_err();
    assert!(matches!(err, Error::UnknownTarget { .. }), "{err}");
}

#[test]
fn extraneous_target_outside_a_roles_delegated_paths_is_not_trusted() {
    let mut f = Fixture::new("extraneous-dependencies");
    f.delegate("targets", "vendor", &["vendor/*"], false);
    // The vendor role lists a path it was not delegated.
    f.add_target("vendor", "hospital/dependency.so", b"extraneous");
    f.add_target("vendor", "vendor/ok.img", b"fine");
    let mut u = f.updater();
    assert!(u.get_target_info("vendor/ok.img").is_ok());
    let err = u.get_target_info("hospital/dependency.so").unwrap_err();
    assert!(matches!(err, Error::UnknownTarget { .. }), "{err}");
}

// --- key compromise below threshold, duplicate signatures and keys -------------------------------

fn threshold_two_targets(name: &str) -> Fixture {
    let mut f = Fixture::new(name);
    let second = key(Scheme::Ed25519);
    f.root
        .keys
        .insert(keyid(&second), Key::from_public(second.public_key()));
    let mut ids: Vec<String> = f.targets_keys.iter().map(keyid).collect();
    ids.push(keyid(&second));
    f.root.roles.insert("targets".into(), Role::new(ids, 2));
    f.targets_keys.push(second);
    f.root.version = 2;
    f.publish_root();
    f.targets.version += 1;
    f.publish_targets_role("targets");
    f.release();
    f.updater().refresh().unwrap();
    f
}

#[test]
fn key_compromise_below_threshold_is_refused() {
    let mut f = threshold_two_targets("key-compromise");
    // The attacker holds one of the two targets keys.
    let stolen = f.targets_keys.remove(0);
    f.targets_keys = vec![stolen];
    f.add_target("targets", "evil.img", b"evil");
    let err = tuf_err(f.updater().refresh().unwrap_err());
    assert!(
        matches!(
            err,
            TufError::ThresholdNotMet {
                valid: 1,
                threshold: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn duplicate_signatures_from_one_key_are_refused() {
    let mut f = threshold_two_targets("duplicate-signatures");
    f.targets.version += 1;
    let one = &f.targets_keys[0];
    let bytes = sign_bytes(&f.targets, &[one, one]);
    f.write_meta(&format!("{}.targets.json", f.targets.version), &bytes);
    f.snapshot.meta.get_mut("targets.json").unwrap().version = f.targets.version;
    f.release();
    let err = tuf_err(f.updater().refresh().unwrap_err());
    assert!(matches!(err, TufError::DuplicateSignature { .. }), "{err}");
}

#[test]
fn one_key_under_two_key_ids_counts_once() {
    let mut f = Fixture::new("duplicate-key-ids");
    // Root lists the same targets key twice under different ids (one with an extra field, so the
    // id is a genuine hash of its JSON) and sets threshold 2.
    let k = medsec_crypto::SigningKey::from_pkcs8_der(&f.targets_keys[0].to_pkcs8_der().unwrap())
        .unwrap();
    let k = &k;
    let mut alias = Key::from_public(k.public_key());
    alias.unrecognized.insert("x-alias".into(), json!(true));
    let alias_id = alias.key_id().unwrap();
    f.root.keys.insert(alias_id.clone(), alias);
    f.root.roles.insert(
        "targets".into(),
        Role::new(vec![keyid(k), alias_id.clone()], 2),
    );
    f.root.version = 2;
    f.publish_root();
    // Sign targets with the key under both ids.
    f.targets.version += 1;
    let doc = sign_bytes(&f.targets, &[k]);
    let mut v: Value = serde_json::from_slice(&doc).unwrap();
    let sig = v["signatures"][0]["sig"].clone();
    v["signatures"]
        .as_array_mut()
        .unwrap()
        .push(json!({"keyid": alias_id, "sig": sig}));
    f.write_meta(
        &format!("{}.targets.json", f.targets.version),
        &serde_json::to_vec(&v).unwrap(),
    );
    f.snapshot.meta.get_mut("targets.json").unwrap().version = f.targets.version;
    f.release();
    let err = tuf_err(f.updater().refresh().unwrap_err());
    assert!(
        matches!(
            err,
            TufError::ThresholdNotMet {
                valid: 1,
                threshold: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn key_ids_are_opaque_names_as_tap12_allows() {
    // tuf-conformance's test_wrong_hashing_algorithm: a key gains an unknown field, so its id is
    // no longer the hash of its JSON; the client must still update.
    let mut f = Fixture::new("key-id-opaque");
    let id = keyid(&f.snapshot_keys[0]);
    f.root
        .keys
        .get_mut(&id)
        .unwrap()
        .unrecognized
        .insert("keyid_hash_algorithms".into(), json!(["md5"]));
    f.root.version = 2;
    f.publish_root();
    f.release();
    f.updater().refresh().unwrap();
    assert_eq!(f.client_version("root"), Some(2));
    assert_eq!(f.client_version("snapshot"), Some(2));
}

#[test]
fn one_key_id_naming_two_keys_is_refused() {
    let mut f = Fixture::new("key-id-twice");
    f.root.version = 2;
    f.publish_root();
    // Repeat a key id inside root's `keys` object with another key: which one would count?
    let text = String::from_utf8(f.read_meta("2.root.json")).unwrap();
    let id = keyid(&f.targets_keys[0]);
    let other = Key::from_public(key(Scheme::Ed25519).public_key());
    let dup = format!(
        "\"keys\": {{\n      \"{id}\": {},",
        serde_json::to_string(&other).unwrap()
    );
    let text = text.replacen("\"keys\": {", &dup, 1);
    assert_ne!(text.as_bytes(), f.read_meta("2.root.json").as_slice());
    f.write_meta("2.root.json", text.as_bytes());
    let err = tuf_err(f.updater().refresh().unwrap_err());
    assert!(matches!(err, TufError::NotCanonicalizable { .. }), "{err}");
}

// --- root rotation ------------------------------------------------------------------------------

fn rotate_roots(f: &mut Fixture, upto: u64) {
    while f.root.version < upto {
        f.root.version += 1;
        f.publish_root();
    }
}

#[test]
fn root_rotation_chain_of_32_versions_is_followed() {
    let mut f = Fixture::new("root-chain-32");
    rotate_roots(&mut f, 32);
    f.updater().refresh().unwrap();
    assert_eq!(f.client_version("root"), Some(32));
}

#[test]
fn root_rotation_chain_of_1025_versions_stops_at_the_cap() {
    let mut f = Fixture::new("root-chain-1025");
    rotate_roots(&mut f, 1025);
    f.updater().refresh().unwrap();
    // Default cap: 256 rotations per refresh (as python-tuf).
    assert_eq!(f.client_version("root"), Some(257));
    f.updater().refresh().unwrap();
    assert_eq!(f.client_version("root"), Some(513));
    let config = UpdaterConfig {
        limits: Limits {
            max_root_rotations: 32,
            ..Limits::default()
        },
        ..Default::default()
    };
    f.updater_with(config).refresh().unwrap();
    assert_eq!(f.client_version("root"), Some(545));
}

#[test]
fn root_rotation_needs_old_and_new_thresholds() {
    let mut f = Fixture::new("root-rotation-signatures");
    let new_root_key = key(Scheme::MlDsa65Ed25519);
    let old_root_key = f.root_keys[0].to_pkcs8_der().unwrap();
    let old_root_key = medsec_crypto::SigningKey::from_pkcs8_der(&old_root_key).unwrap();
    f.root.keys.remove(&keyid(&old_root_key));
    f.root.keys.insert(
        keyid(&new_root_key),
        Key::from_public(new_root_key.public_key()),
    );
    f.root
        .roles
        .insert("root".into(), Role::new(vec![keyid(&new_root_key)], 1));
    f.root.version = 2;
    // Signed only by the new key: the old root did not approve it.
    f.publish_root_signed_by(&[&new_root_key]);
    let err = tuf_err(f.updater().refresh().unwrap_err());
    assert!(matches!(err, TufError::ThresholdNotMet { .. }), "{err}");
    // Signed only by the old key: the new root does not vouch for itself.
    f.publish_root_signed_by(&[&old_root_key]);
    let err = tuf_err(f.updater().refresh().unwrap_err());
    assert!(matches!(err, TufError::ThresholdNotMet { .. }), "{err}");
    assert_eq!(f.client_version("root"), Some(1));
    // Both: accepted.
    f.publish_root_signed_by(&[&old_root_key, &new_root_key]);
    f.updater().refresh().unwrap();
    assert_eq!(f.client_version("root"), Some(2));
}

#[test]
fn root_with_a_skipped_version_is_refused() {
    let mut f = Fixture::new("root-version-skip");
    f.root.version = 3;
    f.publish_root();
    // Serve v3 bytes as 2.root.json.
    let v3 = f.read_meta("3.root.json");
    f.write_meta("2.root.json", &v3);
    let err = tuf_err(f.updater().refresh().unwrap_err());
    assert!(
        matches!(err, TufError::BadVersion { found: 3, .. }),
        "{err}"
    );
}

// --- delegations --------------------------------------------------------------------------------

#[test]
fn delegations_are_searched_depth_first_pre_order_and_loaded_lazily() {
    let mut f = Fixture::new("delegation-order");
    f.delegate("targets", "a", &["fw/*"], false);
    f.delegate("a", "a-child", &["fw/*"], false);
    f.delegate("targets", "b", &["fw/*"], false);
    f.delegate("targets", "unrelated", &["other/*"], false);
    f.add_target("a-child", "fw/x.img", b"from a-child");
    f.add_target("b", "fw/x.img", b"from b");
    let rec = Recording::default();
    let mut u = f.updater_over(Box::new(rec.clone()), UpdaterConfig::default());
    let info = u.get_target_info("fw/x.img").unwrap();
    assert_eq!(
        info.length,
        b"from a-child".len() as u64,
        "a's subtree comes before b"
    );
    let urls = rec.urls.lock().unwrap().clone();
    assert!(urls.iter().any(|u| u.ends_with(".a-child.json")));
    assert!(
        !urls.iter().any(|u| u.ends_with(".b.json")),
        "b is never needed"
    );
    assert!(
        !urls.iter().any(|u| u.ends_with(".unrelated.json")),
        "not on the path"
    );
}

#[test]
fn terminating_delegation_stops_the_search() {
    let mut f = Fixture::new("delegation-terminating");
    f.delegate("targets", "a", &["fw/*"], true);
    f.delegate("targets", "b", &["fw/*"], false);
    f.add_target("b", "fw/x.img", b"from b");
    let err = f.updater().get_target_info("fw/x.img").unwrap_err();
    assert!(matches!(err, Error::UnknownTarget { .. }), "{err}");
}

#[test]
fn delegation_cycles_terminate() {
    let mut f = Fixture::new("delegation-cycle");
    f.delegate("targets", "a", &["*"], false);
    f.delegate("a", "b", &["*"], false);
    // b delegates back to a: a cycle.
    let a_key = f.delegated["a"].keys[0].to_pkcs8_der().unwrap();
    let a_key = medsec_crypto::SigningKey::from_pkcs8_der(&a_key).unwrap();
    let b = f.targets_mut("b");
    b.delegations = Some(medsec_tuf::Delegations {
        keys: BTreeMap::from([(keyid(&a_key), Key::from_public(a_key.public_key()))]),
        roles: Some(vec![medsec_tuf::DelegatedRole {
            name: "a".into(),
            keyids: vec![keyid(&a_key)],
            threshold: 1,
            terminating: false,
            paths: Some(vec!["*".into()]),
            path_hash_prefixes: None,
            unrecognized: BTreeMap::new(),
        }]),
        succinct_roles: None,
        unrecognized: BTreeMap::new(),
    });
    b.version += 1;
    f.publish_targets_role("b");
    f.release();
    let err = f.updater().get_target_info("missing").unwrap_err();
    assert!(matches!(err, Error::UnknownTarget { .. }), "{err}");
}

#[test]
fn delegation_search_visits_at_most_max_delegations_roles() {
    let mut f = Fixture::new("delegation-max-roles");
    let mut parent = "targets".to_owned();
    for i in 0..6 {
        let name = format!("level{i}");
        f.delegate(&parent, &name, &["*"], false);
        parent = name;
    }
    f.add_target("level5", "deep.img", b"deep");
    let config = |max| UpdaterConfig {
        limits: Limits {
            max_delegations: max,
            ..Limits::default()
        },
        ..Default::default()
    };
    assert!(
        f.updater_with(config(6))
            .get_target_info("deep.img")
            .is_ok()
    );
    let err = f
        .updater_with(config(3))
        .get_target_info("deep.img")
        .unwrap_err();
    assert!(matches!(err, Error::UnknownTarget { .. }), "{err}");
}

#[test]
fn delegated_role_signed_by_the_wrong_key_is_refused() {
    let mut f = Fixture::new("delegation-wrong-key");
    f.delegate("targets", "vendor", &["vendor/*"], false);
    f.delegated.get_mut("vendor").unwrap().keys = vec![key(Scheme::Ed25519)];
    f.add_target("vendor", "vendor/x", b"x");
    let err = tuf_err(f.updater().get_target_info("vendor/x").unwrap_err());
    assert!(matches!(err, TufError::ThresholdNotMet { .. }), "{err}");
}

/// A diamond: `release` is delegated by `parent-a` (for `team-a/*`, key A) and by `parent-b` (for
/// `team-b/*`, key B), and signed with key A only. Reached through parent-a it is trusted; reached
/// through parent-b, in the same process after it was loaded through parent-a, it must be
/// checked against key B again, and refused, not reused.
#[test]
fn a_role_delegated_by_two_parents_is_checked_against_the_parent_on_each_path() {
    let mut f = Fixture::new("delegation-diamond");
    f.delegate("targets", "parent-a", &["team-a/*"], false);
    f.delegate("targets", "parent-b", &["team-b/*"], false);
    f.delegate("parent-a", "release", &["team-a/*"], false);
    let key_a = f.delegated["release"].keys[0].to_pkcs8_der().unwrap();
    f.delegate("parent-b", "release", &["team-b/*"], false);
    f.delegated.get_mut("release").unwrap().keys =
        vec![medsec_crypto::SigningKey::from_pkcs8_der(&key_a).unwrap()];
    f.add_target("release", "team-a/x", b"team a's image");
    f.add_target("release", "team-b/y", b"not team b's image");

    let mut u = f.updater();
    let a = u.get_target_info("team-a/x").unwrap();
    assert_eq!(a.length, b"team a's image".len() as u64);
    let err = tuf_err(u.get_target_info("team-b/y").unwrap_err());
    assert!(matches!(err, TufError::ThresholdNotMet { .. }), "{err}");
    // The refusal does not depend on what was loaded before.
    let err = tuf_err(f.updater().get_target_info("team-b/y").unwrap_err());
    assert!(matches!(err, TufError::ThresholdNotMet { .. }), "{err}");
    // And team a's target is still trusted after it.
    assert!(u.get_target_info("team-a/x").is_ok());
}

#[test]
fn hash_bins_find_targets_in_their_bin_only() {
    let mut f = Fixture::new("hash-bins");
    let bins = f.hash_bins(4);
    let bin = bins.role_for_target("fw/pump.img");
    f.add_target(&bin, "fw/pump.img", b"binned");
    let rec = Recording::default();
    let mut u = f.updater_over(Box::new(rec.clone()), UpdaterConfig::default());
    assert!(u.get_target_info("fw/pump.img").is_ok());
    let fetched_bins: Vec<String> = rec
        .urls
        .lock()
        .unwrap()
        .iter()
        .filter(|u| u.contains(".bins-"))
        .cloned()
        .collect();
    assert_eq!(
        fetched_bins.len(),
        1,
        "exactly one bin fetched: {fetched_bins:?}"
    );
    // A target put in the wrong bin is not trusted.
    let wrong = (0..16)
        .map(|n| bins.bin_name(n))
        .find(|b| *b != bins.role_for_target("fw/other.img"))
        .unwrap();
    f.add_target(&wrong, "fw/other.img", b"misplaced");
    assert!(f.updater().get_target_info("fw/other.img").is_err());
}

// --- consistent snapshots and local state -------------------------------------------------------

#[test]
fn consistent_snapshot_fetches_versioned_metadata_and_hash_prefixed_targets() {
    let mut f = Fixture::new("consistent-snapshot");
    f.add_target("targets", "fw/a.img", b"a");
    let rec = Recording::default();
    let mut u = f.updater_over(Box::new(rec.clone()), UpdaterConfig::default());
    let info = u.get_target_info("fw/a.img").unwrap();
    u.download_target(&info, "fw/a.img", &f.download_dir(), None)
        .unwrap();
    let urls = rec.urls.lock().unwrap().clone();
    let names: Vec<&str> = urls.iter().map(|u| u.rsplit('/').next().unwrap()).collect();
    assert!(names.contains(&"timestamp.json"));
    assert!(names.contains(&format!("{}.snapshot.json", f.snapshot.version).as_str()));
    assert!(names.contains(&format!("{}.targets.json", f.targets.version).as_str()));
    assert!(names.contains(&format!("{}.a.img", info.hashes["sha256"]).as_str()));
}

#[test]
fn unchanged_repository_is_not_downloaded_again() {
    let mut f = Fixture::new("cached-metadata");
    f.add_target("targets", "a", b"a");
    f.updater().refresh().unwrap();
    let rec = Recording::default();
    f.updater_over(Box::new(rec.clone()), UpdaterConfig::default())
        .refresh()
        .unwrap();
    let urls = rec.urls.lock().unwrap().clone();
    // root v2 probe and timestamp; snapshot and targets come from the trusted local copies.
    assert_eq!(urls.len(), 2, "{urls:?}");
}

#[test]
fn a_failed_refresh_leaves_the_trusted_state_usable() {
    let mut f = Fixture::new("crash-safety");
    f.add_target("targets", "a", b"a");
    f.updater().refresh().unwrap();
    let before: Vec<_> = f
        .client_files()
        .iter()
        .map(|n| (n.clone(), f.client_file(n).unwrap()))
        .collect();
    // Garbage served, and a stale temporary file from a crash mid-write.
    f.write_meta("timestamp.json", b"{not json");
    std::fs::write(f.client_dir().join(".medsec-tmp-crash"), b"{\"torn").unwrap();
    assert!(f.updater().refresh().is_err());
    let after: Vec<_> = f
        .client_files()
        .iter()
        .map(|n| (n.clone(), f.client_file(n).unwrap()))
        .collect();
    assert_eq!(before, after, "trusted files untouched, temporary removed");
    // The repository recovers; the client continues from its trusted state.
    f.release();
    f.updater().refresh().unwrap();
}

#[test]
fn a_torn_local_timestamp_does_not_block_updates() {
    let mut f = Fixture::new("torn-local-file");
    f.updater().refresh().unwrap();
    std::fs::write(
        f.client_dir().join("timestamp.json"),
        b"{\"signed\": {\"_ty",
    )
    .unwrap();
    std::fs::write(f.client_dir().join("snapshot.json"), b"").unwrap();
    f.release();
    f.updater().refresh().unwrap();
    assert_eq!(f.client_version("timestamp"), Some(2));
}

#[test]
fn init_refuses_a_root_not_signed_by_itself() {
    let f = Fixture::new("init-unsigned-root");
    let other = key(Scheme::Ed25519);
    let bytes = sign_bytes(&f.root, &[&other]);
    let err = medsec_tuf_client::Updater::init(&f.dir.join("x"), &bytes).unwrap_err();
    assert!(
        matches!(err, Error::Metadata(TufError::ThresholdNotMet { .. })),
        "{err}"
    );
}

#[test]
fn a_download_cut_mid_way_stores_nothing() {
    let mut f = Fixture::new("download-cut");
    f.add_target("targets", "fw.img", &vec![7u8; 3 << 20]);
    f.init_client();
    let mut u = f.updater_over(
        Box::new(Broken {
            needle: "fw.img".into(),
            after: 1 << 20,
        }),
        UpdaterConfig::default(),
    );
    let info = u.get_target_info("fw.img").unwrap();
    let dl = f.download_dir();
    let err = u.download_target(&info, "fw.img", &dl, None).unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err}");
    assert!(
        std::fs::read_dir(&dl).unwrap().next().is_none(),
        "nothing stored"
    );
}

//! One contract suite, run against every backend: SQLite always, PostgreSQL at
//! `MEDSEC_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`), as one test per
//! area and backend (`sqlite_meets_the_contract_of::audit`, ...) on a fresh store each, so one
//! failing area does not hide the others. Each PostgreSQL test uses a fresh schema, dropped
//! afterwards. Without a reachable PostgreSQL the PostgreSQL half fails
//! under `CI=true` and says SKIPPED elsewhere.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use medsec_store::prelude::*;
use medsec_store::{
    AdvisoryDoc, AlertAck, AlertRow, AnyStore, AuditRow, BaselineRow, CampaignRow, ConsoleSession,
    DeadLetter, DeviceKey, DeviceQuery, DirectorMetadata, DirectorTimestamp, EnrolmentToken, Error,
    HeadRow, IncidentRow, Inventory, InventoryKind, OperatorToken, ReleaseSbomRow, SequenceWindow,
    SqliteStore, Store, SuppressionRow, TelemetryBatch, VersionReport,
};

async fn assets<S: Store>(s: &S) {
    assert!(
        s.inventory_records(InventoryKind::Model)
            .await
            .unwrap()
            .is_empty()
    );
    s.put_inventory_record(InventoryKind::Model, "ip200", "{\"v\":1}", 1)
        .await
        .unwrap();
    s.put_inventory_record(InventoryKind::Model, "am100", "{}", 1)
        .await
        .unwrap();
    s.put_inventory_record(InventoryKind::Vendor, "ip200", "{\"vendor\":1}", 1)
        .await
        .unwrap();
    // Replacing keeps one row per kind and name.
    s.put_inventory_record(InventoryKind::Model, "ip200", "{\"v\":2}", 2)
        .await
        .unwrap();
    assert_eq!(
        s.inventory_records(InventoryKind::Model).await.unwrap(),
        vec![
            ("am100".to_owned(), "{}".to_owned()),
            ("ip200".to_owned(), "{\"v\":2}".to_owned())
        ]
    );
    assert_eq!(
        s.inventory_records(InventoryKind::Vendor).await.unwrap(),
        vec![("ip200".to_owned(), "{\"vendor\":1}".to_owned())]
    );
}

async fn risk<S: Store>(s: &S) {
    let row = |target: &str, hw: &str, version: &str, at: i64| ReleaseSbomRow {
        target: target.into(),
        hardware_id: hw.into(),
        version: version.into(),
        sha256: format!("{target}-digest"),
        body: format!("{{\"sbom\": \"{target}\"}}"),
        uploaded_at_ms: at,
    };
    assert_eq!(s.release_sbom("rk-hw", "1.0").await.unwrap(), None);
    s.put_release_sbom(&[
        row("fw-1.0.img", "rk-hw", "1.0", 10),
        row("fw-1.0.img", "rk-hw2", "1.0", 10),
    ])
    .await
    .unwrap();
    s.put_release_sbom(&[row("fw-2.0.img", "rk-hw", "2.0", 11)])
        .await
        .unwrap();
    assert_eq!(
        s.release_sbom("rk-hw", "1.0").await.unwrap(),
        Some(row("fw-1.0.img", "rk-hw", "1.0", 10))
    );
    assert_eq!(
        s.release_sbom("rk-hw2", "1.0")
            .await
            .unwrap()
            .unwrap()
            .target,
        "fw-1.0.img"
    );
    assert_eq!(s.release_sbom("rk-hw2", "2.0").await.unwrap(), None);
    // Uploading again replaces.
    let mut again = row("fw-2.0.img", "rk-hw", "2.0", 12);
    again.body = "{}".into();
    s.put_release_sbom(std::slice::from_ref(&again))
        .await
        .unwrap();
    assert_eq!(s.release_sbom("rk-hw", "2.0").await.unwrap(), Some(again));
    assert_eq!(s.release_sboms().await.unwrap().len(), 3);

    let g0 = s.risk_generation().await.unwrap();
    assert!(
        s.put_advisory_doc("osv:CVE-1", "2026-01-01", "{\"a\": 1}", 100)
            .await
            .unwrap()
    );
    // The same modified date changes nothing; another replaces it.
    assert!(
        !s.put_advisory_doc("osv:CVE-1", "2026-01-01", "{\"a\": 2}", 101)
            .await
            .unwrap()
    );
    assert_eq!(
        s.advisory_docs().await.unwrap(),
        vec![("osv:CVE-1".to_owned(), "{\"a\": 1}".to_owned())]
    );
    let g1 = s.risk_generation().await.unwrap();
    assert_ne!(g0, g1);
    assert!(
        s.put_advisory_doc("osv:CVE-1", "2026-02-01", "{\"a\": 3}", 102)
            .await
            .unwrap()
    );
    let g2 = s.risk_generation().await.unwrap();
    assert_ne!(g1, g2, "a replacement moves the generation");
    assert_eq!(
        s.advisory_docs().await.unwrap(),
        vec![("osv:CVE-1".to_owned(), "{\"a\": 3}".to_owned())]
    );
    // Many in one transaction: the unchanged one is not counted.
    let doc = |id: &str, modified: &str, body: &str| AdvisoryDoc {
        identity: id.into(),
        modified: modified.into(),
        body: body.into(),
    };
    assert_eq!(
        s.put_advisory_docs(
            &[
                doc("osv:CVE-1", "2026-02-01", "{\"a\": 4}"),
                doc("osv:CVE-2", "2026-01-01", "{\"b\": 1}"),
            ],
            103
        )
        .await
        .unwrap(),
        1
    );
    assert_eq!(
        s.advisory_docs().await.unwrap(),
        vec![
            ("osv:CVE-1".to_owned(), "{\"a\": 3}".to_owned()),
            ("osv:CVE-2".to_owned(), "{\"b\": 1}".to_owned())
        ]
    );
    assert_ne!(s.risk_generation().await.unwrap(), g2);
    assert!(s.put_vex_doc("d1", "{\"v\": 1}", 103).await.unwrap());
    assert!(!s.put_vex_doc("d1", "{\"v\": 1}", 104).await.unwrap());
    assert!(s.put_vex_doc("d0", "{\"v\": 0}", 105).await.unwrap());
    assert_eq!(
        s.vex_docs().await.unwrap(),
        vec!["{\"v\": 1}".to_owned(), "{\"v\": 0}".to_owned()]
    );
    assert_ne!(s.risk_generation().await.unwrap(), g2);

    // Devices by the release their last signed report named.
    for id in ["rk-a", "rk-b", "rk-c"] {
        s.register_device(id, "pump", 1).await.unwrap();
        s.set_device_inventory(
            id,
            &Inventory {
                model: "pump".into(),
                hardware_id: if id == "rk-c" { "other" } else { "rk-hw" }.into(),
                site: String::new(),
                groups: Vec::new(),
            },
        )
        .await
        .unwrap();
        let nonce = format!("{id}-n");
        s.add_report_nonce(id, &nonce, 100, 200, 4).await.unwrap();
        s.record_version_report(&VersionReport {
            nonce,
            device_id: id.into(),
            received_at_ms: 150,
            version: "1.0".into(),
            release_counter: 1,
            payload: b"p".to_vec(),
            signature: vec![1],
            certificate: vec![2],
        })
        .await
        .unwrap();
    }
    assert_eq!(
        s.devices_running("rk-hw", "1.0").await.unwrap(),
        vec!["rk-a", "rk-b"]
    );
    assert!(s.devices_running("rk-hw", "2.0").await.unwrap().is_empty());
}

async fn devices<S: Store>(s: &S) {
    assert!(
        s.register_device("pump-1", "infusion-pump", 10)
            .await
            .unwrap()
    );
    assert!(
        !s.register_device("pump-1", "other", 11).await.unwrap(),
        "second registration is a no-op"
    );
    s.register_device("monitor-1", "patient-monitor", 12)
        .await
        .unwrap();
    let d = s.device("pump-1").await.unwrap();
    assert_eq!(
        (d.model.as_str(), d.state.as_str(), d.quarantined),
        ("infusion-pump", "registered", false)
    );
    assert_eq!(d.status, "{}");
    assert_eq!(d.last_seen_ms, None);
    assert!(matches!(
        s.device("nope").await,
        Err(Error::NotFound { what: "device", .. })
    ));
    s.set_device_state("pump-1", "enrolled").await.unwrap();
    s.set_device_status("pump-1", r#"{"battery":80}"#, 99)
        .await
        .unwrap();
    let d = s.device("pump-1").await.unwrap();
    assert_eq!(
        (d.state.as_str(), d.status.as_str(), d.last_seen_ms),
        ("enrolled", r#"{"battery":80}"#, Some(99))
    );
    assert!(matches!(
        s.set_device_state("nope", "x").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.set_device_status("nope", "{}", 1).await,
        Err(Error::NotFound { .. })
    ));
    // The census groups by state, quarantine, model and version, and counts each group.
    let census = s.device_census().await.unwrap();
    let group = |state: &str, model: &str| {
        census
            .iter()
            .find(|c| c.state == state && c.model == model)
            .map(|c| (c.quarantined, c.installed_version.clone(), c.count))
    };
    assert_eq!(
        group("enrolled", "infusion-pump"),
        Some((false, String::new(), 1))
    );
    assert_eq!(
        group("registered", "patient-monitor"),
        Some((false, String::new(), 1))
    );
    assert_eq!(census.iter().map(|c| c.count).sum::<i64>(), 2);
    // Paging in id order.
    let page = |after: Option<&str>, limit| DeviceQuery {
        after: after.map(Into::into),
        limit,
        ..DeviceQuery::default()
    };
    let all = s.devices(&page(None, 10)).await.unwrap();
    assert_eq!(
        all.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["monitor-1", "pump-1"]
    );
    assert_eq!(all[0].hardware_id, "");
    assert!(all[0].groups.is_empty());
    assert_eq!(
        s.devices(&page(Some("monitor-1"), 10)).await.unwrap().len(),
        1
    );
    assert_eq!(s.devices(&page(None, 1)).await.unwrap().len(), 1);
    // Values that would break naive SQL are stored as they are.
    let odd = "x'); DROP TABLE devices; --";
    s.register_device(odd, odd, 1).await.unwrap();
    assert_eq!(s.device(odd).await.unwrap().model, odd);
}

/// Operator-set inventory: replaced as a whole, groups kept sorted and once, filters combine.
async fn inventory<S: Store>(s: &S) {
    let inv = |model: &str, hw: &str, site: &str, groups: &[&str]| Inventory {
        model: model.into(),
        hardware_id: hw.into(),
        site: site.into(),
        groups: groups.iter().map(|g| (*g).into()).collect(),
    };
    for (id, model) in [("inv-a", "pump"), ("inv-b", "pump"), ("inv-c", "monitor")] {
        s.register_device(id, model, 1).await.unwrap();
    }
    s.set_device_inventory(
        "inv-a",
        &inv("pump", "hw-p1", "north", &["icu", "wave-1", "icu"]),
    )
    .await
    .unwrap();
    s.set_device_inventory("inv-b", &inv("pump", "hw-p1", "south", &["icu"]))
        .await
        .unwrap();
    s.set_device_inventory("inv-c", &inv("monitor", "hw-m1", "north", &["ward-3"]))
        .await
        .unwrap();
    let a = s.device("inv-a").await.unwrap();
    assert_eq!(
        (a.hardware_id.as_str(), a.site.as_str(), a.groups.clone()),
        (
            "hw-p1",
            "north",
            vec!["icu".to_owned(), "wave-1".to_owned()]
        )
    );
    let ids = |q: DeviceQuery| async move {
        s.devices(&q)
            .await
            .unwrap()
            .into_iter()
            .filter(|d| d.id.starts_with("inv-"))
            .map(|d| d.id)
            .collect::<Vec<_>>()
    };
    let q = |model: Option<&str>, site: Option<&str>, group: Option<&str>| DeviceQuery {
        model: model.map(Into::into),
        site: site.map(Into::into),
        group: group.map(Into::into),
        ..DeviceQuery::default()
    };
    assert_eq!(ids(q(Some("pump"), None, None)).await, ["inv-a", "inv-b"]);
    assert_eq!(ids(q(None, Some("north"), None)).await, ["inv-a", "inv-c"]);
    assert_eq!(ids(q(None, None, Some("icu"))).await, ["inv-a", "inv-b"]);
    assert_eq!(
        ids(q(Some("pump"), Some("north"), Some("icu"))).await,
        ["inv-a"]
    );
    assert!(ids(q(Some("monitor"), None, Some("icu"))).await.is_empty());
    // Groups arrive with listed devices too.
    let listed = s.devices(&q(None, None, Some("wave-1"))).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].groups, ["icu", "wave-1"]);
    // Replacing drops groups no longer named.
    s.set_device_inventory("inv-a", &inv("pump", "hw-p2", "north", &[]))
        .await
        .unwrap();
    let a = s.device("inv-a").await.unwrap();
    assert!(a.groups.is_empty());
    assert_eq!(a.hardware_id, "hw-p2");
    assert!(ids(q(None, None, Some("wave-1"))).await.is_empty());
    assert!(matches!(
        s.set_device_inventory("nope", &inv("x", "", "", &["g"]))
            .await,
        Err(Error::NotFound { what: "device", .. })
    ));
}

/// Nonces are single-use, per device, expire, and are bounded per device; a report consumes its
/// nonce and sets the installed version in the same transaction.
async fn telemetry<S: Store>(s: &S) {
    s.register_device("tel-1", "pump", 1).await.unwrap();
    s.register_device("tel-2", "pump", 1).await.unwrap();
    let batch = |device: &str, sequence: i64, at: i64| TelemetryBatch {
        device_id: device.into(),
        sequence,
        received_at_ms: at,
        events: 2,
        source: "127.0.0.1:5000".into(),
        body: format!(r#"{{"sequence":{sequence}}}"#).into_bytes(),
    };
    let alert = |rule: &str, at: i64| AlertRow {
        id: 0,
        device_id: "tel-1".into(),
        sequence: 1,
        at_ms: at - 5,
        raised_at_ms: at,
        rule: rule.into(),
        severity: "high".into(),
        body: format!(r#"{{"rule":"{rule}"}}"#),
        aggregate_key: String::new(),
        occurrences: 1,
        last_seen_ms: at,
        suppressed_by: 0,
        aggregate_within_ms: 0,
    };
    // Jumps of at most 1,000 (from 0 for a device without a cursor).
    let w = SequenceWindow { max_step: 1_000 };
    let ids = s
        .record_telemetry(
            &batch("tel-1", 1, 100),
            &[alert("a", 100), alert("b", 100)],
            w,
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids[0].id < ids[1].id && ids[0].new && ids[1].new, "{ids:?}");
    s.record_telemetry(&batch("tel-1", 5, 200), &[], w)
        .await
        .unwrap();
    // The numbers skipped are a gap.
    let gaps = |device: &'static str| async move {
        s.telemetry_gaps(device)
            .await
            .unwrap()
            .iter()
            .map(|g| (g.first_sequence, g.last_sequence))
            .collect::<Vec<_>>()
    };
    assert_eq!(gaps("tel-1").await, vec![(2, 4)]);
    // Another device's sequence numbers are its own.
    s.record_telemetry(&batch("tel-2", 1, 150), &[], w)
        .await
        .unwrap();
    // The same batch again is a duplicate; other content under a stored number is a replay
    // conflict; neither changes anything, nor stores its alerts.
    let mut forged = batch("tel-1", 5, 300);
    forged.body = br#"{"sequence":5,"forged":true}"#.to_vec();
    for (b, conflict) in [(batch("tel-1", 5, 300), false), (forged, true)] {
        match (
            s.record_telemetry(&b, &[alert("replayed", 300)], w).await,
            conflict,
        ) {
            (Err(Error::Duplicate { sequence, last, .. }), false)
            | (Err(Error::ReplayConflict { sequence, last, .. }), true) => {
                assert_eq!((sequence, last), (5, 5));
            }
            other => panic!("batch 5 again: {other:?}"),
        }
    }
    // Late batches fill the gap in any order, each once; the gap splits and closes.
    s.register_device("tel-4", "pump", 1).await.unwrap();
    for sequence in [1, 5, 3] {
        s.record_telemetry(&batch("tel-4", sequence, 310), &[], w)
            .await
            .unwrap();
    }
    assert_eq!(gaps("tel-4").await, vec![(2, 2), (4, 4)]);
    assert!(matches!(
        s.record_telemetry(&batch("tel-4", 3, 311), &[], w).await,
        Err(Error::Duplicate { sequence: 3, .. })
    ));
    for sequence in [4, 2] {
        s.record_telemetry(&batch("tel-4", sequence, 320), &[], w)
            .await
            .unwrap();
    }
    assert_eq!(gaps("tel-4").await, vec![]);
    assert_eq!(s.telemetry("tel-4", 0, 10).await.unwrap().len(), 5);
    // Gaps older than a cut-off are handed out once each, across callers.
    s.record_telemetry(&batch("tel-2", 10, 160), &[], w)
        .await
        .unwrap();
    s.record_telemetry(&batch("tel-2", 7, 170), &[], w)
        .await
        .unwrap();
    assert_eq!(gaps("tel-2").await, vec![(2, 6), (8, 9)]);
    assert!(
        s.expire_telemetry_gaps(160, 400, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let expired = s.expire_telemetry_gaps(161, 400, 10).await.unwrap();
    assert_eq!(expired.len(), 2, "{expired:?}");
    assert!(expired.iter().all(|g| g.alerted_at_ms == Some(400)));
    assert!(
        s.expire_telemetry_gaps(161, 401, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A late batch after the alert still fills its gap; the rest keep their alert time.
    s.record_telemetry(&batch("tel-2", 4, 175), &[], w)
        .await
        .unwrap();
    let open = s.telemetry_gaps("tel-2").await.unwrap();
    assert_eq!(open.len(), 3);
    assert!(
        open.iter().all(|g| g.alerted_at_ms == Some(400)),
        "{open:?}"
    );
    // A jump past the step is refused and changes nothing, also from no cursor at all; the
    // largest number there is included. Alerts of a refused batch are stored on their own.
    s.register_device("tel-3", "pump", 1).await.unwrap();
    for (device, sequence, last) in [
        ("tel-2", 1_011, 10),
        ("tel-2", i64::MAX, 10),
        ("tel-3", 1_001, 0),
        ("tel-3", i64::MAX, 0),
    ] {
        match s
            .record_telemetry(&batch(device, sequence, 185), &[], w)
            .await
        {
            Err(Error::SequenceJump {
                sequence: got,
                last: was,
                max_step,
                ..
            }) => assert_eq!((got, was, max_step), (sequence, last, 1_000)),
            other => panic!("jump to {sequence}: {other:?}"),
        }
    }
    s.record_telemetry(&batch("tel-2", 1_010, 186), &[], w)
        .await
        .unwrap();
    // A device numbers from 1: what its first batch skipped is a gap.
    s.record_telemetry(&batch("tel-3", 1_000, 186), &[], w)
        .await
        .unwrap();
    assert_eq!(gaps("tel-3").await, vec![(1, 999)]);
    let jump = AlertRow {
        device_id: "tel-3".into(),
        sequence: i64::MAX,
        ..alert("telemetry-sequence-jump", 187)
    };
    let ids = s.record_alerts(std::slice::from_ref(&jump)).await.unwrap();
    assert_eq!(ids.len(), 1);
    let listed = s.alerts(Some("tel-3"), 0, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sequence, i64::MAX);
    // After a reset the device's numbering starts anew where its next batch says, with no gap
    // below it (the device has stored batches); a number below the newest that was never
    // skipped is a replay even if not stored.
    s.register_device("tel-5", "pump", 1).await.unwrap();
    s.record_telemetry(&batch("tel-5", 5, 186), &[], w)
        .await
        .unwrap();
    assert_eq!(gaps("tel-5").await, vec![(1, 4)]);
    assert_eq!(s.reset_telemetry_cursor("tel-5").await.unwrap(), Some(5));
    assert_eq!(gaps("tel-5").await, vec![]);
    s.record_telemetry(&batch("tel-5", 10, 187), &[], w)
        .await
        .unwrap();
    assert_eq!(gaps("tel-5").await, vec![]);
    assert!(matches!(
        s.record_telemetry(&batch("tel-5", 7, 187), &[], w).await,
        Err(Error::Replayed { last: 10, .. })
    ));
    // A reset forgets the cursor and the gaps: the device may number from 1 again.
    assert_eq!(
        s.reset_telemetry_cursor("tel-3").await.unwrap(),
        Some(1_000)
    );
    assert_eq!(s.reset_telemetry_cursor("tel-3").await.unwrap(), None);
    s.record_telemetry(&batch("tel-3", 1, 188), &[], w)
        .await
        .unwrap();
    assert!(matches!(
        s.record_telemetry(&batch("tel-3", 1, 189), &[], w).await,
        Err(Error::Duplicate { last: 1, .. })
    ));
    s.record_telemetry(&batch("tel-2", 1_011, 190), &[], w)
        .await
        .unwrap();

    let late: Vec<i64> = s
        .telemetry("tel-2", 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|b| b.sequence)
        .collect();
    assert_eq!(late.len(), 6, "{late:?}");
    assert_eq!(
        s.telemetry_sources("tel-1", 0, 10).await.unwrap(),
        vec!["127.0.0.1:5000", "127.0.0.1:5000"]
    );
    assert_eq!(
        s.telemetry_sources("tel-1", 150, 10).await.unwrap().len(),
        1
    );
    // Baselines: versions per model, the newest in force, a version only once.
    let baseline = |model: &str, version: i64| BaselineRow {
        model: model.into(),
        version,
        created_at_ms: 10 * version,
        created_by: "Operator::\"sam\"".into(),
        body: format!(r#"{{"v":{version}}}"#),
        signature: "00".into(),
    };
    assert_eq!(s.latest_baseline("pump").await.unwrap(), None);
    s.add_baseline(&baseline("pump", 1)).await.unwrap();
    s.add_baseline(&baseline("pump", 2)).await.unwrap();
    s.add_baseline(&baseline("monitor", 1)).await.unwrap();
    assert!(matches!(
        s.add_baseline(&baseline("pump", 2)).await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(
        s.latest_baseline("pump").await.unwrap(),
        Some(baseline("pump", 2))
    );
    assert_eq!(s.latest_baseline_version("pump").await.unwrap(), Some(2));
    assert_eq!(s.latest_baseline_version("nobody").await.unwrap(), None);
    // The first MAC a device reports is its binding; a later one returns the first.
    let mac = "02:00:00:aa:bb:cc";
    assert_eq!(s.bind_identity("tel-1", "mac", mac, 10).await.unwrap(), mac);
    assert_eq!(
        s.bind_identity("tel-1", "mac", "02:00:00:aa:bb:cd", 20)
            .await
            .unwrap(),
        mac
    );
    assert_eq!(
        s.bind_identity("tel-2", "mac", "02:00:00:aa:bb:cd", 20)
            .await
            .unwrap(),
        "02:00:00:aa:bb:cd"
    );
    assert!(s.bind_identity("tel-nobody", "mac", mac, 10).await.is_err());
    // An operator's re-bind replaces it, and says what it replaced.
    let repaired = "02:00:00:aa:bb:ee";
    assert_eq!(
        s.rebind_identity("tel-1", "mac", repaired, 30)
            .await
            .unwrap(),
        Some(mac.to_owned())
    );
    assert_eq!(
        s.bind_identity("tel-1", "mac", mac, 40).await.unwrap(),
        repaired
    );
    assert_eq!(
        s.identity_bindings("tel-1").await.unwrap(),
        vec![medsec_store::IdentityBindingRow {
            kind: "mac".into(),
            value: repaired.into(),
            bound_at_ms: 30,
        }]
    );
    s.register_device("tel-3", "pump", 1).await.unwrap();
    assert_eq!(
        s.rebind_identity("tel-3", "mac", repaired, 30)
            .await
            .unwrap(),
        None
    );
    assert!(
        s.rebind_identity("tel-nobody", "mac", mac, 10)
            .await
            .is_err()
    );
    assert!(s.identity_bindings("tel-nobody").await.unwrap().is_empty());
    let stored = s.telemetry("tel-1", 0, 10).await.unwrap();
    assert_eq!(stored, vec![batch("tel-1", 5, 200), batch("tel-1", 1, 100)]);
    assert_eq!(s.telemetry("tel-1", 150, 10).await.unwrap().len(), 1);
    assert_eq!(s.telemetry("tel-1", 0, 1).await.unwrap().len(), 1);
    assert_eq!(s.device("tel-1").await.unwrap().last_seen_ms, Some(200));
    // A batch of an unknown device is refused by the database.
    assert!(
        s.record_telemetry(&batch("tel-nobody", 1, 100), &[], w)
            .await
            .is_err()
    );
    // Alerts came with their batch, and none with the refused replays.
    let alerts = s.alerts(Some("tel-1"), 0, 10).await.unwrap();
    let rules: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
    assert_eq!(rules, vec!["b", "a"]);
    assert!(
        alerts
            .iter()
            .all(|a| a.id > 0 && a.sequence == 1 && a.at_ms == 95)
    );
    assert_eq!(
        s.alerts(None, 0, 10).await.unwrap().len(),
        3,
        "with tel-3's"
    );
    assert!(s.alerts(Some("tel-2"), 0, 10).await.unwrap().is_empty());
    assert_eq!(s.alerts(None, 101, 10).await.unwrap().len(), 1, "tel-3's");
    // The export reads them in id order, after a cursor, raised before a moment.
    let all = s.alerts_after(0, i64::MAX, 10).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "id order");
    let rest = s.alerts_after(all[0].id, i64::MAX, 10).await.unwrap();
    assert_eq!(rest.len(), 2);
    assert_eq!(s.alerts_after(0, i64::MAX, 1).await.unwrap().len(), 1);
    let early = all.iter().map(|a| a.raised_at_ms).min().unwrap();
    assert!(
        s.alerts_after(0, early, 10).await.unwrap().is_empty(),
        "not settled yet"
    );
    assert_eq!(s.max_alert_id().await.unwrap(), all[2].id);
    // One alert by id, and its acknowledgement, once.
    assert_eq!(s.alert(all[1].id).await.unwrap(), all[1]);
    assert!(matches!(s.alert(-5).await, Err(Error::NotFound { .. })));
    let ack = AlertAck {
        alert_id: all[1].id,
        acknowledged_by: "Operator::\"olga\"".into(),
        at_ms: 120,
        note: "known maintenance".into(),
    };
    s.acknowledge_alert(&ack).await.unwrap();
    assert!(matches!(
        s.acknowledge_alert(&ack).await,
        Err(Error::WrongState { .. })
    ));
    assert!(matches!(
        s.acknowledge_alert(&AlertAck {
            alert_id: -5,
            ..ack.clone()
        })
        .await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(s.alert_acks(all[0].id, all[2].id).await.unwrap(), vec![ack]);
    assert!(s.alert_acks(all[2].id, all[2].id).await.unwrap().is_empty());
    alert_aggregation(s, &alert).await;
}

/// Occurrences of one alert (device, rule, key, suppression) within the window are counted
/// into it; another key, another suppression or a gap past the window opens a new one; every
/// occurrence's batch is kept for the baselines.
async fn alert_aggregation<S: Store>(s: &S, alert: &impl Fn(&str, i64) -> AlertRow) {
    s.register_device("agg-1", "pump", 1).await.unwrap();
    let w = SequenceWindow { max_step: 1_000 };
    let occurrence = |sequence: i64, at: i64, key: &str, suppressed_by: i64| AlertRow {
        device_id: "agg-1".into(),
        sequence,
        aggregate_key: key.into(),
        suppressed_by,
        aggregate_within_ms: 1_000,
        ..alert("destination-not-allowed", at)
    };
    let batch = |sequence: i64, at: i64| TelemetryBatch {
        device_id: "agg-1".into(),
        sequence,
        received_at_ms: at,
        events: 1,
        source: "127.0.0.1:5000".into(),
        body: b"{}".to_vec(),
    };
    let mut first = None;
    for (sequence, at) in [(1, 10_000), (2, 10_500), (3, 11_200)] {
        let stored = s
            .record_telemetry(
                &batch(sequence, at),
                &[occurrence(sequence, at, "203.0.113.9:443", 0)],
                w,
            )
            .await
            .unwrap();
        assert_eq!(stored[0].new, sequence == 1, "{sequence}");
        let id = *first.get_or_insert(stored[0].id);
        assert_eq!(stored[0].id, id);
    }
    let listed = s.alerts(Some("agg-1"), 0, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].occurrences,
            listed[0].raised_at_ms,
            listed[0].last_seen_ms
        ),
        (3, 10_000, 11_200)
    );
    // Another destination, a suppressed occurrence, and one past the window: three more.
    let more = [
        occurrence(4, 11_300, "198.51.100.7:443", 0),
        occurrence(4, 11_300, "203.0.113.9:443", 42),
    ];
    let stored = s
        .record_telemetry(&batch(4, 11_300), &more, w)
        .await
        .unwrap();
    assert!(stored.iter().all(|x| x.new), "{stored:?}");
    let late = s
        .record_alerts(&[occurrence(5, 13_000, "203.0.113.9:443", 0)])
        .await
        .unwrap();
    assert!(late[0].new && Some(late[0].id) != first);
    let listed = s.alerts(Some("agg-1"), 0, 10).await.unwrap();
    assert_eq!(listed.len(), 4);
    assert_eq!(listed.iter().filter(|a| a.suppressed_by == 42).count(), 1);
    let mut seqs = s.alerted_sequences("agg-1", 0).await.unwrap();
    seqs.sort_unstable();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    let hits = s.alert_hits(first.unwrap()).await.unwrap();
    assert_eq!(hits, vec![(1, 10_000), (2, 10_500), (3, 11_200)]);
    // Suppressions: in force until they expire or are lifted.
    let sup = |rule: &str, expires: i64| SuppressionRow {
        id: 0,
        rule: rule.into(),
        scope: "destination".into(),
        value: "203.0.113.9".into(),
        reason: "vendor update server".into(),
        created_by: "Operator::\"alice\"".into(),
        created_at_ms: 1_000,
        expires_at_ms: expires,
        lifted_at_ms: None,
    };
    let a = s
        .put_suppression(&sup("destination-not-allowed", 5_000))
        .await
        .unwrap();
    let b = s
        .put_suppression(&sup("clinical-jump", 9_000))
        .await
        .unwrap();
    let active = |at: i64| async move {
        s.suppressions(Some(at))
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(active(4_999).await, vec![a, b]);
    assert_eq!(active(5_000).await, vec![b], "expired at its time");
    assert!(s.lift_suppression(b, 6_000).await.unwrap());
    assert!(!s.lift_suppression(b, 6_001).await.unwrap(), "lifted once");
    assert!(active(6_000).await.is_empty());
    assert_eq!(s.suppressions(None).await.unwrap().len(), 2, "kept, listed");
}

async fn incidents<S: Store>(s: &S) {
    s.register_device("inc-dev", "pump", 1).await.unwrap();
    // Quarantine is a device flag, set and cleared.
    s.set_device_quarantined("inc-dev", true).await.unwrap();
    assert!(s.device("inc-dev").await.unwrap().quarantined);
    s.set_device_quarantined("inc-dev", false).await.unwrap();
    assert!(!s.device("inc-dev").await.unwrap().quarantined);
    assert!(matches!(
        s.set_device_quarantined("inc-nobody", true).await,
        Err(Error::NotFound { .. })
    ));
    let row = |id: &str, version: i64, phase: &str, at: i64| IncidentRow {
        id: id.into(),
        version,
        phase: phase.into(),
        opened_at_ms: 10,
        updated_at_ms: at,
        body: format!(r#"{{"phase":"{phase}"}}"#),
    };
    s.create_incident(&row("inc-a", 1, "detected", 10))
        .await
        .unwrap();
    s.create_incident(&row("inc-b", 1, "detected", 20))
        .await
        .unwrap();
    assert!(matches!(
        s.create_incident(&row("inc-a", 1, "detected", 30)).await,
        Err(Error::Conflict { .. })
    ));
    // Optimistic update: the holder of version 1 wins once; a stale writer loses.
    assert!(
        s.update_incident(&row("inc-a", 1, "closed", 40))
            .await
            .unwrap()
    );
    assert!(
        !s.update_incident(&row("inc-a", 1, "contained", 50))
            .await
            .unwrap()
    );
    let a = s.incident("inc-a").await.unwrap();
    assert_eq!(
        (a.version, a.phase.as_str(), a.updated_at_ms),
        (2, "closed", 40)
    );
    assert!(matches!(
        s.update_incident(&row("inc-zz", 1, "closed", 1)).await,
        Err(Error::NotFound { .. })
    ));
    let all: Vec<String> = s
        .incidents(false, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(all, vec!["inc-a", "inc-b"]);
    let open: Vec<String> = s
        .incidents(true, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(open, vec!["inc-b"]);
}

async fn version_reports<S: Store>(s: &S) {
    s.register_device("rep-1", "pump", 1).await.unwrap();
    s.register_device("rep-2", "pump", 1).await.unwrap();
    let report = |device: &str, nonce: &str, at: i64, version: &str, counter: i64| VersionReport {
        nonce: nonce.into(),
        device_id: device.into(),
        received_at_ms: at,
        version: version.into(),
        release_counter: counter,
        payload: b"signed bytes".to_vec(),
        signature: vec![1, 2, 3],
        certificate: vec![4, 5, 6],
    };
    s.add_report_nonce("rep-1", "n1", 100, 200, 4)
        .await
        .unwrap();
    // Another device cannot use it, nor can it be used after it expires.
    assert!(matches!(
        s.record_version_report(&report("rep-2", "n1", 150, "1.0", 1))
            .await,
        Err(Error::NonceRefused { .. })
    ));
    assert!(matches!(
        s.record_version_report(&report("rep-1", "n1", 200, "1.0", 1))
            .await,
        Err(Error::NonceRefused { .. })
    ));
    assert!(matches!(
        s.record_version_report(&report("rep-1", "never-issued", 150, "1.0", 1))
            .await,
        Err(Error::NonceRefused { .. })
    ));
    s.add_report_nonce("rep-1", "n2", 300, 400, 4)
        .await
        .unwrap();
    s.record_version_report(&report("rep-1", "n2", 310, "1.1.0", 7))
        .await
        .unwrap();
    let d = s.device("rep-1").await.unwrap();
    assert_eq!(
        (
            d.installed_version.as_str(),
            d.release_counter,
            d.last_seen_ms
        ),
        ("1.1.0", 7, Some(310))
    );
    // Replaying the same report is refused and changes nothing.
    assert!(matches!(
        s.record_version_report(&report("rep-1", "n2", 320, "1.0", 1))
            .await,
        Err(Error::NonceRefused { .. })
    ));
    assert_eq!(s.device("rep-1").await.unwrap().installed_version, "1.1.0");
    let kept = s.version_reports("rep-1", 10).await.unwrap();
    assert_eq!(kept, [report("rep-1", "n2", 310, "1.1.0", 7)]);
    // At most `max_outstanding` nonces per device: the oldest go.
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        s.add_report_nonce("rep-2", n, 1000 + i as i64, 9000, 2)
            .await
            .unwrap();
    }
    assert!(matches!(
        s.record_version_report(&report("rep-2", "a", 1100, "2.0", 2))
            .await,
        Err(Error::NonceRefused { .. })
    ));
    s.record_version_report(&report("rep-2", "b", 1100, "2.0", 2))
        .await
        .unwrap();
    s.record_version_report(&report("rep-2", "c", 1200, "2.1", 3))
        .await
        .unwrap();
    let kept = s.version_reports("rep-2", 10).await.unwrap();
    assert_eq!(
        kept.iter().map(|r| r.version.as_str()).collect::<Vec<_>>(),
        ["2.1", "2.0"],
        "newest first"
    );
    assert_eq!(s.version_reports("rep-2", 1).await.unwrap().len(), 1);
    s.add_report_nonce("rep-2", "d", 1300, 9000, 2)
        .await
        .unwrap();
    assert!(matches!(
        s.add_report_nonce("rep-1", "d", 1300, 9000, 2).await,
        Err(Error::Conflict { .. })
    ));
}

/// Campaigns are created once, updated only at the version read, and found from their devices.
async fn campaigns<S: Store>(s: &S) {
    let row = |id: &str, at: i64| CampaignRow {
        id: id.into(),
        status: "created".into(),
        state: r#"{"plan":1}"#.into(),
        version: 1,
        created_by: "Operator::\"alice\"".into(),
        created_at_ms: at,
        updated_at_ms: at,
    };
    s.register_device("camp-1", "pump", 1).await.unwrap();
    s.register_device("camp-2", "pump", 1).await.unwrap();
    s.create_campaign(&row("fix-1.1", 10), &["camp-1".into(), "camp-2".into()])
        .await
        .unwrap();
    s.create_campaign(&row("fix-1.2", 20), &["camp-1".into()])
        .await
        .unwrap();
    assert!(matches!(
        s.create_campaign(&row("fix-1.1", 30), &[]).await,
        Err(Error::Conflict {
            what: "campaign",
            ..
        })
    ));
    assert_eq!(s.campaign("fix-1.1").await.unwrap(), row("fix-1.1", 10));
    assert!(matches!(
        s.campaign("nope").await,
        Err(Error::NotFound {
            what: "campaign",
            ..
        })
    ));
    assert_eq!(
        s.campaigns()
            .await
            .unwrap()
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        ["fix-1.2", "fix-1.1"]
    );
    assert_eq!(
        s.device_campaigns("camp-1").await.unwrap(),
        ["fix-1.2", "fix-1.1"]
    );
    assert_eq!(s.device_campaigns("camp-2").await.unwrap(), ["fix-1.1"]);
    // Only running and paused campaigns are active.
    assert!(
        s.active_device_campaigns("camp-1")
            .await
            .unwrap()
            .is_empty()
    );
    // Optimistic updates: the first writer at version 1 wins, the second learns it lost.
    assert!(
        s.update_campaign("fix-1.1", 1, "running", "{\"a\":1}", 40)
            .await
            .unwrap()
    );
    assert!(
        !s.update_campaign("fix-1.1", 1, "paused", "{\"b\":1}", 41)
            .await
            .unwrap()
    );
    assert_eq!(
        s.active_device_campaigns("camp-1").await.unwrap(),
        [("fix-1.1".to_owned(), 2)]
    );
    let c = s.campaign("fix-1.1").await.unwrap();
    assert_eq!(
        (
            c.status.as_str(),
            c.state.as_str(),
            c.version,
            c.updated_at_ms
        ),
        ("running", "{\"a\":1}", 2, 40)
    );
    assert!(matches!(
        s.update_campaign("nope", 1, "x", "{}", 1).await,
        Err(Error::NotFound { .. })
    ));
    // A campaign over a device that does not exist is refused whole.
    assert!(
        s.create_campaign(&row("ghosts", 50), &["ghost".into()])
            .await
            .is_err()
    );
    assert!(matches!(
        s.campaign("ghosts").await,
        Err(Error::NotFound { .. })
    ));
}

/// Director metadata: created once, then replaced only by the next version, never twice.
async fn director<S: Store>(s: &S) {
    let m = |version: i64, assignment: &str| DirectorMetadata {
        device_id: "dir-1".into(),
        version,
        assignment: assignment.into(),
        targets: vec![1, version as u8],
        snapshot: vec![2],
        timestamp: vec![3, 0, 255],
        expires_at_ms: 1000 + version,
        updated_at_ms: version,
    };
    s.register_device("dir-1", "pump", 1).await.unwrap();
    assert_eq!(s.director_metadata("dir-1").await.unwrap(), None);
    assert!(s.put_director_metadata(&m(1, "[]")).await.unwrap());
    // A second writer that also read "nothing" loses.
    assert!(!s.put_director_metadata(&m(1, "[\"x\"]")).await.unwrap());
    assert!(s.put_director_metadata(&m(2, "[\"a\"]")).await.unwrap());
    // Skipping or repeating a version is refused; the stored row is unchanged.
    assert!(!s.put_director_metadata(&m(2, "[\"b\"]")).await.unwrap());
    assert!(!s.put_director_metadata(&m(4, "[\"c\"]")).await.unwrap());
    assert_eq!(
        s.director_metadata("dir-1").await.unwrap(),
        Some(m(2, "[\"a\"]"))
    );
    // Only devices that exist.
    let mut ghost = m(1, "[]");
    ghost.device_id = "ghost".into();
    assert!(s.put_director_metadata(&ghost).await.is_err());
}

/// A poll's one query reads what the three separate reads would, in the same order.
async fn poll<S: Store>(s: &S) {
    assert!(matches!(
        s.device_poll("poll-ghost").await,
        Err(Error::NotFound { what: "device", .. })
    ));
    // A bare device: no groups, campaigns or director metadata.
    s.register_device("poll-0", "pump", 1).await.unwrap();
    let bare = s.device_poll("poll-0").await.unwrap();
    assert_eq!(bare.device, s.device("poll-0").await.unwrap());
    assert!(bare.campaigns.is_empty() && bare.director.is_none());

    s.register_device("poll-1", "pump", 1).await.unwrap();
    s.set_device_inventory(
        "poll-1",
        &Inventory {
            model: "pump".into(),
            hardware_id: "hw-p1".into(),
            site: "north wing".into(),
            groups: vec!["zeta ward".into(), "icu".into(), "b-2".into()],
        },
    )
    .await
    .unwrap();
    // Two active campaigns created in the same millisecond (ordered by id), a newer one, and
    // one that is not active.
    for (id, at, status) in [
        ("p-b", 100, "running"),
        ("p-a", 100, "paused"),
        ("p-new", 200, "running"),
        ("p-old", 50, "aborted"),
    ] {
        let row = CampaignRow {
            id: id.into(),
            status: "created".into(),
            state: "{}".into(),
            version: 1,
            created_by: "op".into(),
            created_at_ms: at,
            updated_at_ms: at,
        };
        s.create_campaign(&row, &["poll-1".into()]).await.unwrap();
        assert!(s.update_campaign(id, 1, status, "{}", at).await.unwrap());
    }
    assert!(
        s.update_campaign("p-new", 2, "running", "{}", 300)
            .await
            .unwrap()
    );
    let m = DirectorMetadata {
        device_id: "poll-1".into(),
        version: 1,
        assignment: "{\"fw.bin\":1}".into(),
        targets: vec![9; 4000],
        snapshot: vec![8; 100],
        timestamp: vec![0, 10, 255, 7],
        expires_at_ms: 5000,
        updated_at_ms: 10,
    };
    assert!(s.put_director_metadata(&m).await.unwrap());
    let p = s.device_poll("poll-1").await.unwrap();
    assert_eq!(p.device, s.device("poll-1").await.unwrap());
    assert_eq!(p.device.groups, ["b-2", "icu", "zeta ward"]);
    assert_eq!(
        p.campaigns,
        s.active_device_campaigns("poll-1").await.unwrap()
    );
    assert_eq!(
        p.campaigns,
        [
            ("p-new".to_owned(), 3),
            ("p-a".to_owned(), 2),
            ("p-b".to_owned(), 2)
        ]
    );
    assert_eq!(p.director, Some(DirectorTimestamp::from(m)));
}

async fn keys<S: Store>(s: &S) {
    let key = |fp: u8, dev: &str, serial: &str| DeviceKey {
        spki_sha256: vec![fp; 32],
        device_id: dev.into(),
        serial: serial.into(),
        not_after_ms: 1000,
        created_at_ms: i64::from(fp),
    };
    s.add_device_key(&key(1, "pump-1", "01")).await.unwrap();
    s.add_device_key(&key(2, "pump-1", "02")).await.unwrap();
    // The same key again, for the same or another device, is a conflict.
    assert!(matches!(
        s.add_device_key(&key(1, "pump-1", "03")).await,
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        s.add_device_key(&key(2, "monitor-1", "04")).await,
        Err(Error::Conflict { .. })
    ));
    let keys = s.device_keys("pump-1").await.unwrap();
    assert_eq!(
        keys.iter().map(|k| k.serial.as_str()).collect::<Vec<_>>(),
        ["01", "02"]
    );
    assert!(s.device_keys("monitor-1").await.unwrap().is_empty());
}

async fn enrolment_tokens<S: Store>(s: &S) {
    let token = |h: u8, expires: i64| EnrolmentToken {
        token_sha256: vec![h; 32],
        device_id: "monitor-1".into(),
        created_by: "op".into(),
        created_at_ms: i64::from(h),
        expires_at_ms: expires,
        used_at_ms: None,
        revoked_at_ms: None,
    };
    s.create_enrolment_token(&token(1, 100)).await.unwrap();
    s.create_enrolment_token(&token(2, 100)).await.unwrap();
    s.create_enrolment_token(&token(4, 100)).await.unwrap();
    assert!(matches!(
        s.create_enrolment_token(&token(1, 100)).await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(
        s.consume_enrolment_token(&[1; 32], 50).await.unwrap(),
        "monitor-1"
    );
    let again = s.consume_enrolment_token(&[1; 32], 51).await;
    assert!(
        matches!(
            again,
            Err(Error::TokenRefused {
                reason: "token already used"
            })
        ),
        "{again:?}"
    );
    let late = s.consume_enrolment_token(&[2; 32], 100).await;
    assert!(
        matches!(
            late,
            Err(Error::TokenRefused {
                reason: "token expired"
            })
        ),
        "{late:?}"
    );
    let unknown = s.consume_enrolment_token(&[3; 32], 1).await;
    assert!(
        matches!(
            unknown,
            Err(Error::TokenRefused {
                reason: "unknown token"
            })
        ),
        "{unknown:?}"
    );

    // A revoked token is refused, and says so; a used one cannot be revoked.
    let revoked = s.revoke_enrolment_token(&[4; 32], 60).await.unwrap();
    assert_eq!(revoked.revoked_at_ms, Some(60));
    assert_eq!(revoked.id(), "0404040404040404");
    let refused = s.consume_enrolment_token(&[4; 32], 61).await;
    assert!(
        matches!(
            refused,
            Err(Error::TokenRefused {
                reason: "token revoked"
            })
        ),
        "{refused:?}"
    );
    for hash in [[4; 32], [1; 32]] {
        let again = s.revoke_enrolment_token(&hash, 62).await;
        assert!(matches!(again, Err(Error::WrongState { .. })), "{again:?}");
    }
    assert!(matches!(
        s.revoke_enrolment_token(&[3; 32], 62).await,
        Err(Error::NotFound { .. })
    ));
    let listed = s.enrolment_tokens(Some("monitor-1")).await.unwrap();
    let states: Vec<_> = listed
        .iter()
        .map(|t| (t.token_sha256[0], t.used_at_ms, t.revoked_at_ms))
        .collect();
    assert_eq!(
        states,
        [(1, Some(50), None), (2, None, None), (4, None, Some(60))]
    );
    assert_eq!(s.enrolment_tokens(None).await.unwrap(), listed);
    assert!(s.enrolment_tokens(Some("pump-1")).await.unwrap().is_empty());
    // Read by hash, whatever its state, without consuming it.
    let one = s.enrolment_token(&[2; 32]).await.unwrap();
    assert_eq!(
        (one.device_id.as_str(), one.used_at_ms),
        ("monitor-1", None)
    );
    assert_eq!(s.enrolment_token(&[2; 32]).await.unwrap(), one);
    assert!(matches!(
        s.enrolment_token(&[3; 32]).await,
        Err(Error::NotFound { .. })
    ));
}

async fn operator_tokens<S: Store>(s: &S) {
    let t = OperatorToken {
        token_sha256: vec![7; 32],
        name: "alice".into(),
        roles: vec!["admin".into(), "viewer".into()],
        created_at_ms: 1,
        expires_at_ms: 2,
        revoked_at_ms: None,
    };
    s.create_operator_token(&t).await.unwrap();
    let bob = OperatorToken {
        token_sha256: vec![9; 32],
        name: "bob".into(),
        created_at_ms: 3,
        expires_at_ms: 10,
        ..t.clone()
    };
    s.create_operator_token(&bob).await.unwrap();
    assert_eq!(s.operator_token(&[7; 32]).await.unwrap(), t);
    assert!(matches!(
        s.operator_token(&[8; 32]).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(s.operator_tokens().await.unwrap(), [t.clone(), bob.clone()]);
    assert_eq!(bob.refusal(5), None);
    assert_eq!(bob.refusal(10), Some("operator token expired"));

    let revoked = s.revoke_operator_token(&[9; 32], 5).await.unwrap();
    assert_eq!(revoked.revoked_at_ms, Some(5));
    let stored = s.operator_token(&[9; 32]).await.unwrap();
    assert_eq!(stored, revoked);
    assert_eq!(stored.refusal(5), Some("operator token revoked"));
    assert!(matches!(
        s.revoke_operator_token(&[9; 32], 6).await,
        Err(Error::WrongState { .. })
    ));
    assert!(matches!(
        s.revoke_operator_token(&[8; 32], 6).await,
        Err(Error::NotFound { .. })
    ));
    // The other token is untouched.
    assert_eq!(s.operator_token(&[7; 32]).await.unwrap(), t);
}

async fn console_sessions<S: Store>(s: &S) {
    let row = ConsoleSession {
        id_sha256: vec![1; 32],
        kind: "session".into(),
        principal: "https://idp.example#alice".into(),
        display_name: "alice".into(),
        roles: vec!["security".into(), "viewer".into()],
        csrf: "csrf-token".into(),
        data: String::new(),
        created_at_ms: 100,
        last_seen_ms: 100,
        expires_at_ms: 1000,
    };
    s.put_console_session(&row).await.unwrap();
    assert!(matches!(
        s.put_console_session(&row).await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(
        s.console_session(&[1; 32], "session", 500).await.unwrap(),
        row
    );
    // Another kind, or past its expiry, is not found.
    for (kind, at) in [("link", 500), ("session", 1000)] {
        assert!(matches!(
            s.console_session(&[1; 32], kind, at).await,
            Err(Error::NotFound { .. })
        ));
    }
    s.touch_console_session(&[1; 32], 600).await.unwrap();
    assert_eq!(
        s.console_session(&[1; 32], "session", 700)
            .await
            .unwrap()
            .last_seen_ms,
        600
    );
    // A link is taken once.
    let link = ConsoleSession {
        id_sha256: vec![2; 32],
        kind: "link".into(),
        csrf: String::new(),
        ..row.clone()
    };
    s.put_console_session(&link).await.unwrap();
    assert!(matches!(
        s.take_console_session(&[2; 32], "session", 500).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        s.take_console_session(&[2; 32], "link", 500).await.unwrap(),
        link
    );
    assert!(matches!(
        s.take_console_session(&[2; 32], "link", 500).await,
        Err(Error::NotFound { .. })
    ));
    // A new row clears the ones expired before it.
    let later = ConsoleSession {
        id_sha256: vec![3; 32],
        created_at_ms: 2000,
        last_seen_ms: 2000,
        expires_at_ms: 3000,
        ..row.clone()
    };
    s.put_console_session(&later).await.unwrap();
    assert!(matches!(
        s.console_session(&[1; 32], "session", 0).await,
        Err(Error::NotFound { .. })
    ));
    s.end_console_session(&[3; 32]).await.unwrap();
    s.end_console_session(&[3; 32]).await.unwrap();
    assert!(s.console_session(&[3; 32], "session", 2500).await.is_err());
}

async fn device_filters<S: Store>(s: &S) {
    for (id, model) in [("a-1", "pump"), ("a-2", "pump"), ("a-3", "monitor")] {
        s.register_device(id, model, 1).await.unwrap();
        s.set_device_state(id, "enrolled").await.unwrap();
    }
    s.set_device_state("a-3", "revoked").await.unwrap();
    s.set_device_quarantined("a-2", true).await.unwrap();
    s.set_device_status("a-1", "{}", 5_000).await.unwrap();
    s.add_device_key(&DeviceKey {
        spki_sha256: vec![4; 32],
        device_id: "a-1".into(),
        serial: "01".into(),
        not_after_ms: 9_000,
        created_at_ms: 1,
    })
    .await
    .unwrap();
    let ids = |q: DeviceQuery| async move {
        s.devices(&q)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect::<Vec<_>>()
    };
    let q = DeviceQuery::default;
    assert_eq!(
        ids(DeviceQuery {
            state: Some("revoked".into()),
            ..q()
        })
        .await,
        ["a-3"]
    );
    assert_eq!(
        ids(DeviceQuery {
            quarantined_only: true,
            ..q()
        })
        .await,
        ["a-2"]
    );
    // Silent: enrolled and not heard from since 4,000 (never heard from counts).
    assert_eq!(
        ids(DeviceQuery {
            silent_before_ms: Some(4_000),
            ..q()
        })
        .await,
        ["a-2"]
    );
    assert_eq!(
        ids(DeviceQuery {
            silent_before_ms: Some(6_000),
            ..q()
        })
        .await,
        ["a-1", "a-2"]
    );
    assert_eq!(
        ids(DeviceQuery {
            certificate_expires_before_ms: Some(10_000),
            ..q()
        })
        .await,
        ["a-1"]
    );
    assert!(
        ids(DeviceQuery {
            certificate_expires_before_ms: Some(8_000),
            ..q()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        ids(DeviceQuery {
            model: Some("pump".into()),
            version: Some(String::new()),
            ..q()
        })
        .await,
        ["a-1", "a-2"]
    );
    let counts = s.attention_counts(6_000, 10_000).await.unwrap();
    assert_eq!((counts.silent, counts.certificates_expiring), (2, 1));
}

async fn audit<S: Store>(s: &S) {
    assert!(s.audit_heads().await.unwrap().is_empty());
    assert!(s.audit_latest_head().await.unwrap().is_none());
    let rows: Vec<AuditRow> = (0..5000)
        .map(|i| AuditRow {
            seq: i,
            entry: format!("{{\"n\":{i}}}"),
        })
        .collect();
    s.append_audit(
        &rows,
        &HeadRow {
            tree_size: 5000,
            head: "h1".into(),
        },
    )
    .await
    .unwrap();
    // A batch overlapping stored entries is refused whole: nothing of it is stored.
    let overlap = [
        AuditRow {
            seq: 5000,
            entry: "new".into(),
        },
        AuditRow {
            seq: 4999,
            entry: "dup".into(),
        },
    ];
    let refused = s
        .append_audit(
            &overlap,
            &HeadRow {
                tree_size: 5001,
                head: "h2".into(),
            },
        )
        .await;
    assert!(
        matches!(refused, Err(Error::Conflict { .. })),
        "{refused:?}"
    );
    assert!(s.audit_entries(5000, 10).await.unwrap().is_empty());
    assert_eq!(s.audit_heads().await.unwrap().len(), 1);
    s.append_audit(
        &overlap[..1],
        &HeadRow {
            tree_size: 5001,
            head: "h2".into(),
        },
    )
    .await
    .unwrap();
    let page = s.audit_entries(4998, 10).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [4998, 4999, 5000]
    );
    assert_eq!(page[2].entry, "new");
    assert_eq!(s.audit_entries(0, 3).await.unwrap()[1].entry, "{\"n\":1}");
    // Substring search, newest first; the wildcards of LIKE are plain characters here.
    let about = [
        (5001, r#"{"principal":"Device::\"a_b\"","n":1}"#),
        (5002, r#"{"principal":"Device::\"axb\"","n":2}"#),
        (5003, r#"{"resource":"Device::\"a_b\"","n":3} 100%"#),
    ];
    let rows: Vec<AuditRow> = about
        .iter()
        .map(|(seq, entry)| AuditRow {
            seq: *seq,
            entry: (*entry).into(),
        })
        .collect();
    s.append_audit(
        &rows,
        &HeadRow {
            tree_size: 5004,
            head: "h3".into(),
        },
    )
    .await
    .unwrap();
    let found: Vec<i64> = s
        .audit_entries_mentioning(r#"Device::\"a_b\""#, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(found, [5003, 5001]);
    assert_eq!(
        s.audit_entries_mentioning("100%", 10).await.unwrap().len(),
        1
    );
    assert_eq!(
        s.audit_entries_mentioning(r#"Device::\"a_b\""#, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    let heads = s.audit_heads().await.unwrap();
    assert_eq!(
        heads.iter().map(|h| h.tree_size).collect::<Vec<_>>(),
        [5000, 5001, 5004]
    );
    assert_eq!(
        s.audit_latest_head().await.unwrap().map(|h| h.tree_size),
        Some(5004)
    );
    // Export cursors per sink and source, and dead letters.
    assert_eq!(s.export_cursor("siem", "audit").await.unwrap(), None);
    s.set_export_cursor("siem", "audit", 7, 1).await.unwrap();
    s.set_export_cursor("siem", "audit", 9, 2).await.unwrap();
    s.set_export_cursor("hook", "audit", 3, 2).await.unwrap();
    assert_eq!(s.export_cursor("siem", "audit").await.unwrap(), Some(9));
    assert_eq!(s.export_cursor("siem", "alerts").await.unwrap(), None);
    let letter = DeadLetter {
        id: 0,
        sink: "hook".into(),
        event_id: "audit-3".into(),
        event: "{}".into(),
        error: "HTTP 400".into(),
        attempts: 5,
        at_ms: 3,
    };
    s.add_export_dead_letter(&letter).await.unwrap();
    let kept = s.export_dead_letters(Some("hook"), 10).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert!(kept[0].id > 0 && kept[0].event_id == "audit-3" && kept[0].attempts == 5);
    assert!(
        s.export_dead_letters(Some("siem"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.export_dead_letters(None, 10).await.unwrap().len(), 1);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The PostgreSQL URL the tests use, or `None` (with a SKIPPED line) when unreachable off CI.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("MEDSEC_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let addr = url
        .split_once('@')
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let reachable = std::net::TcpStream::connect(&addr).is_ok();
    if reachable {
        return Some(url);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "PostgreSQL is not reachable at {addr} and CI=true: the PostgreSQL contract suite must run in CI"
    );
    eprintln!(
        "SKIPPED: PostgreSQL contract suite (nothing listening at {addr}; set MEDSEC_TEST_POSTGRES)"
    );
    None
}

/// A fresh SQLite store in its own folder.
async fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("medsec.db"), 4)
        .await
        .unwrap();
    (dir, store)
}

/// Runs `areas` on a fresh PostgreSQL schema of their own, dropped afterwards; nothing (after a
/// SKIPPED line) when PostgreSQL is unreachable off CI.
async fn on_postgres(name: &str, areas: impl AsyncFnOnce(&medsec_store::PostgresStore)) {
    let Some(url) = postgres_url() else { return };
    let schema = format!("medsec_contract_{name}_{}", std::process::id());
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = AnyStore::open(&format!("{url}{sep}search_path={schema}"), 4)
        .await
        .unwrap();
    assert_eq!(store.backend(), "postgres");
    let AnyStore::Postgres(pg) = &store else {
        unreachable!()
    };
    areas(pg).await;
    pg.close().await;
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
}

/// One test per area and backend, so that one failing area does not hide the others. An area
/// that reads what another wrote names it after `after`, and runs on the same fresh store.
macro_rules! contract {
    ($($area:ident $(after $($before:ident),+)?;)*) => {
        mod sqlite_meets_the_contract_of {
            $(
                #[test]
                fn $area() {
                    super::runtime().block_on(async {
                        let (_dir, store) = super::sqlite().await;
                        $($(super::$before(&store).await;)+)?
                        super::$area(&store).await;
                    });
                }
            )*
        }

        mod postgres_meets_the_contract_of {
            $(
                #[test]
                fn $area() {
                    super::runtime().block_on(super::on_postgres(stringify!($area), async |store| {
                        $($(super::$before(store).await;)+)?
                        super::$area(store).await;
                    }));
                }
            )*
        }
    };
}

contract! {
    devices;
    inventory;
    version_reports;
    telemetry;
    incidents;
    campaigns;
    director;
    poll;
    keys after devices;
    enrolment_tokens after devices;
    operator_tokens;
    console_sessions;
    device_filters;
    audit;
    risk;
    assets;
}

#[test]
fn a_reopened_sqlite_store_applies_no_migration_twice_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let store = SqliteStore::open(&dir.path().join("medsec.db"), 4)
            .await
            .unwrap();
        devices(&store).await;
        keys(&store).await;
        audit(&store).await;
        store.close().await;
        let url = format!("sqlite://{}", dir.path().join("medsec.db").display());
        let again = AnyStore::open(&url, 2).await.unwrap();
        assert_eq!(again.backend(), "sqlite");
        assert_eq!(again.device("pump-1").await.unwrap().state, "enrolled");
        assert_eq!(again.audit_heads().await.unwrap().len(), 3);
        assert_eq!(again.device_keys("pump-1").await.unwrap().len(), 2);
    });
}

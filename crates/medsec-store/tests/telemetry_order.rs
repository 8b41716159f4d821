//! Property: whatever order a device's batches arrive in, and however often each arrives
//! (a broker redelivering, two consumers), every number is stored once with its first content,
//! nothing is refused but the copies, and no gap stays open. Another content under a stored
//! number is refused as a replay. (SQLite; the contract suite runs the same cases on PostgreSQL.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test: a panic is a failure with its input"
)]

use medsec_store::prelude::*;
use medsec_store::{Error, SequenceWindow, SqliteStore, TelemetryBatch};
use proptest::prelude::*;

fn batch(sequence: i64, body: &str) -> TelemetryBatch {
    TelemetryBatch {
        device_id: "pump-p".into(),
        sequence,
        received_at_ms: 1,
        events: 1,
        source: "test".into(),
        body: body.as_bytes().to_vec(),
    }
}

/// `n` numbers in an order made from `keys` (a sort by key), each sent `1 + copies[i]` times.
fn arrivals(n: usize, keys: &[u32], copies: &[u8]) -> Vec<i64> {
    let mut order: Vec<(u32, i64)> = (1..=n as i64)
        .map(|s| (keys[(s as usize - 1) % keys.len()], s))
        .collect();
    order.sort();
    let mut out = Vec::new();
    for (i, (_, s)) in order.iter().enumerate() {
        for _ in 0..=copies[i % copies.len()] % 3 {
            out.push(*s);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn any_order_with_copies_stores_each_number_once(
        n in 1usize..80,
        keys in proptest::collection::vec(any::<u32>(), 1..80),
        copies in proptest::collection::vec(any::<u8>(), 1..80),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let s = SqliteStore::open(&dir.path().join("medsec.db"), 1).await.unwrap();
            s.register_device("pump-p", "pump", 0).await.unwrap();
            let w = SequenceWindow { max_step: 1_000 };
            let mut stored = 0;
            for seq in arrivals(n, &keys, &copies) {
                match s.record_telemetry(&batch(seq, &format!("b{seq}")), &[], w).await {
                    Ok(_) => stored += 1,
                    Err(Error::Duplicate { sequence, .. }) => assert_eq!(sequence, seq),
                    other => panic!("batch {seq}: {other:?}"),
                }
            }
            assert_eq!(stored, n);
            let mut got: Vec<i64> = s
                .telemetry("pump-p", 0, u32::MAX)
                .await
                .unwrap()
                .iter()
                .map(|b| {
                    assert_eq!(b.body, format!("b{}", b.sequence).into_bytes());
                    b.sequence
                })
                .collect();
            got.sort_unstable();
            assert_eq!(got, (1..=n as i64).collect::<Vec<_>>());
            assert!(s.telemetry_gaps("pump-p").await.unwrap().is_empty());
            // Other content under any stored number is a replay, and changes nothing.
            let pick = 1 + (keys[0] as usize % n) as i64;
            assert!(matches!(
                s.record_telemetry(&batch(pick, "forged"), &[], w).await,
                Err(Error::ReplayConflict { .. })
            ));
            assert_eq!(s.telemetry("pump-p", 0, u32::MAX).await.unwrap().len(), n);
        });
    }
}

//! The server as a library: start-up on embedded defaults and its periodic chores. The wire
//! behaviour is tested with real peers in `crates/medsec/tests/e2e`, the API in process in
//! `tests/api.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is a failed test"
)]

use std::time::{Duration, SystemTime};

use medsec_server::{Config, Server};
use medsec_store::prelude::*;

fn config(dir: &std::path::Path) -> Config {
    Config {
        data_dir: dir.to_owned(),
        device_listen: "127.0.0.1:0".parse().unwrap(),
        operator_listen: "127.0.0.1:0".parse().unwrap(),
        insecure_plaintext_audit_key: true,
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crl_at_half_its_lifetime_is_re_signed_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    let crl = dir.path().join("ca/crl.pem");
    let before = std::fs::read(&crl).unwrap();
    assert!(
        !server.state.housekeeping().await.unwrap(),
        "a fresh CRL is left alone"
    );
    assert_eq!(std::fs::read(&crl).unwrap(), before);

    // Four days old, of a seven-day lifetime.
    let old = SystemTime::now() - Duration::from_secs(4 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&crl)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert!(server.state.housekeeping().await.unwrap());
    assert_ne!(std::fs::read(&crl).unwrap(), before, "a new CRL was signed");
    let entries = server.state.store.audit_entries(0, 100).await.unwrap();
    assert!(
        entries.iter().any(|e| e.entry.contains("\"crl.sign\"")),
        "the re-signing is in the audit log"
    );
}

//! Hashing throughput of artifact verification against `openssl speed -evp sha256` and
//! `sha256sum` on the same machine, in the same run.
//!
//! `cargo bench -p medsec-tuf-client --bench hash` (set `MEDSEC_BENCH_MIB` to change the 1 GiB).
//! Prints a table; the target is >= 95 % of OpenSSL's rate for the client's streamed check.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark program"
)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::Command;
use std::time::Instant;

use medsec_crypto::digest::{HashAlgorithm, Hasher};
use medsec_tuf::TargetFile;
use medsec_tuf_client::Updater;

fn best_of<F: FnMut()>(runs: usize, mut f: F) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn openssl_rate() -> Option<f64> {
    let out = Command::new("openssl")
        .args([
            "speed", "-evp", "sha256", "-bytes", "16384", "-seconds", "3",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Last line: "sha256   1234567.89k" (thousands of bytes per second).
    let line = text.lines().rev().find(|l| l.starts_with("sha256"))?;
    let k: f64 = line
        .split_whitespace()
        .last()?
        .trim_end_matches('k')
        .parse()
        .ok()?;
    Some(k * 1000.0)
}

fn main() {
    let mib: u64 = std::env::var("MEDSEC_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let bytes = mib << 20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("artifact.img");
    let mut block = vec![0u8; 16 << 20];
    for (i, b) in block.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    }
    {
        let mut f = std::fs::File::create(&path).unwrap();
        for _ in 0..(bytes / block.len() as u64) {
            f.write_all(&block).unwrap();
        }
    }
    let mut h = Hasher::new(HashAlgorithm::Sha256);
    for _ in 0..(bytes / block.len() as u64) {
        h.update(&block);
    }
    let digest = hex::encode(h.finish());
    let info = TargetFile {
        length: bytes,
        hashes: BTreeMap::from([("sha256".to_owned(), digest)]),
        custom: None,
    };

    let mem = best_of(3, || {
        let mut h = Hasher::new(HashAlgorithm::Sha256);
        for _ in 0..(bytes / block.len() as u64) {
            h.update(&block);
        }
        std::hint::black_box(h.finish());
    });
    let streamed = best_of(3, || assert!(Updater::is_cached(&info, &path).unwrap()));
    let sha256sum = best_of(3, || {
        let ok = Command::new("sha256sum")
            .arg(&path)
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "sha256sum failed");
    });
    let openssl = openssl_rate();
    let rate = |secs: f64| bytes as f64 / secs;
    let mbs = |r: f64| r / 1e6;
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let sha_ni = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| c.contains(" sha_ni"));
    println!("machine: {cpu} (sha_ni: {sha_ni}); {mib} MiB artifact, best of 3");
    println!();
    println!("| what | MB/s | % of openssl |");
    println!("|---|---:|---:|");
    let pct = |r: f64| openssl.map_or("n/a".to_owned(), |o| format!("{:.0} %", 100.0 * r / o));
    if let Some(o) = openssl {
        println!(
            "| openssl speed -evp sha256 (16 KiB blocks) | {:.0} | 100 % |",
            mbs(o)
        );
    }
    println!(
        "| medsec Hasher, in memory | {:.0} | {} |",
        mbs(rate(mem)),
        pct(rate(mem))
    );
    println!(
        "| medsec client: streamed check of the file (Updater::is_cached) | {:.0} | {} |",
        mbs(rate(streamed)),
        pct(rate(streamed))
    );
    println!(
        "| sha256sum of the file | {:.0} | {} |",
        mbs(rate(sha256sum)),
        pct(rate(sha256sum))
    );
}

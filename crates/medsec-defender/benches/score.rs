//! Per-event scoring latency of the Defender's detectors: 34 features (the WUSTL flow shape),
//! trained on 10,000 rows, then 100,000 events scored one at a time as ingestion does.
//!
//!   cargo bench -p medsec-defender --bench score
//!
//! benches/defender_wustl.sh runs this beside scikit-learn's IsolationForest.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a benchmark: its output is the point, and a panic is a failed run"
)]

use std::hint::black_box;
use std::time::Instant;

use medsec_defender::{
    FeatureSpec, Features, ForestOptions, IsolationForest, RobustBaseline, SplitMix64, Tail,
};

const WIDTH: usize = 34;

fn row(r: &mut SplitMix64) -> Vec<f64> {
    (0..WIDTH)
        .map(|j| (j as f64 + 1.0) * (1.0 + r.next_f64() + r.next_f64()))
        .collect()
}

fn run(name: &str, events: &[Vec<f64>], mut score: impl FnMut(&[f64]) -> f64) {
    let mut times = Vec::with_capacity(events.len());
    let started = Instant::now();
    for e in events {
        let t = Instant::now();
        black_box(score(black_box(e)));
        times.push(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    let total = started.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    let q = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    println!(
        "| {name} | {:.0} | {:.2} | {:.2} | {:.2} |",
        events.len() as f64 / total,
        q(0.5),
        q(0.99),
        q(0.999)
    );
}

fn main() {
    let mut r = SplitMix64::new(1);
    let features = Features::new(
        (0..WIDTH)
            .map(|j| {
                FeatureSpec::new(
                    &format!("f{j}"),
                    if j % 3 == 0 { Tail::Upper } else { Tail::Both },
                    j % 2 == 0,
                )
            })
            .collect(),
    )
    .unwrap();
    let train: Vec<Vec<f64>> = (0..10_000).map(|_| row(&mut r)).collect();
    let events: Vec<Vec<f64>> = (0..100_000).map(|_| row(&mut r)).collect();
    let t = Instant::now();
    let baseline = RobustBaseline::fit(features.clone(), &train).unwrap();
    let fit_baseline = t.elapsed();
    let t = Instant::now();
    let forest = IsolationForest::fit(features, &train, ForestOptions::default()).unwrap();
    let fit_forest = t.elapsed();
    println!(
        "training on 10,000 rows x {WIDTH} features: robust baseline {:.1} ms, isolation forest (200 trees, 256 rows each) {:.1} ms\n",
        fit_baseline.as_secs_f64() * 1e3,
        fit_forest.as_secs_f64() * 1e3
    );
    println!("| detector (one event at a time) | events/s | p50 µs | p99 µs | p99.9 µs |");
    println!("|---|---:|---:|---:|---:|");
    run("robust baseline, score only", &events, |e| {
        baseline.score(e, 0).unwrap().score
    });
    run("robust baseline, with top-3 explanation", &events, |e| {
        baseline.score(e, 3).unwrap().score
    });
    run("isolation forest, 200 trees", &events, |e| {
        forest.score(e).unwrap()
    });
}

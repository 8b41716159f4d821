//! Isolation forest (Liu, Ting and Zhou, "Isolation Forest", ICDM 2008), seeded.
//!
//! Each tree is grown on a subsample of `sample_size` rows by splitting on a random feature at a
//! random value between that feature's minimum and maximum in the node, down to
//! `ceil(log2(sample_size))` levels. A row's score is `2^(-E[h(x)] / c(ψ))`: rows isolated in few
//! splits score near 1, rows deep in the bulk near 0.5 or below. Same behaviour as
//! scikit-learn's `IsolationForest.score_samples` (negated).

use serde::{Deserialize, Serialize};

use crate::{Error, Features, SplitMix64};

/// How the forest is grown.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForestOptions {
    /// Trees (scikit-learn's default is 100).
    pub trees: usize,
    /// Rows per tree (scikit-learn's default is min(256, rows)).
    pub sample_size: usize,
    /// Seed of the subsampling and split choices.
    pub seed: u64,
}

impl Default for ForestOptions {
    fn default() -> Self {
        Self {
            trees: 200,
            sample_size: 256,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Node {
    Split {
        feature: u32,
        value: f64,
        left: u32,
        right: u32,
    },
    /// A leaf holds its depth-independent part of the path length, `c(size)`, computed once
    /// when the tree is grown: scoring then costs one addition per tree, not a logarithm.
    Leaf { size: u32, adjust: f64 },
}

/// A trained forest over a [`Features`] list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsolationForest {
    features: Features,
    options: ForestOptions,
    /// Each tree's nodes; a tree's root is its first node.
    trees: Vec<Vec<Node>>,
    /// c(ψ) for the sample size actually used.
    norm: f64,
}

/// Average path length of an unsuccessful search in a binary search tree of `n` items, c(n).
fn c(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (n - 1.0) / n
        }
    }
}

impl IsolationForest {
    /// Grows the forest on `rows` (each in the order of `features`).
    pub fn fit(
        features: Features,
        rows: &[Vec<f64>],
        options: ForestOptions,
    ) -> Result<Self, Error> {
        if rows.len() < 2 || options.trees == 0 || options.sample_size < 2 {
            return Err(Error::TooFewRows {
                needed: 2,
                got: rows.len(),
            });
        }
        let data: Vec<Vec<f64>> = rows
            .iter()
            .map(|r| features.transform(r))
            .collect::<Result<_, _>>()?;
        let psi = options.sample_size.min(data.len());
        let depth_limit = (psi as f64).log2().ceil() as usize;
        let mut rng = SplitMix64::new(options.seed);
        let mut index: Vec<usize> = (0..data.len()).collect();
        let mut trees = Vec::with_capacity(options.trees);
        for _ in 0..options.trees {
            // A subsample without replacement: the first ψ of a partial shuffle.
            for i in 0..psi {
                let j = i + rng.below(index.len() - i);
                index.swap(i, j);
            }
            let mut sample: Vec<usize> =
                index.get(..psi).map(<[usize]>::to_vec).unwrap_or_default();
            let mut nodes = Vec::new();
            grow(
                &data,
                &mut sample,
                0,
                depth_limit,
                features.len(),
                &mut rng,
                &mut nodes,
            );
            trees.push(nodes);
        }
        Ok(Self {
            features,
            options,
            trees,
            norm: c(psi),
        })
    }

    /// The features.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// How it was grown.
    pub fn options(&self) -> ForestOptions {
        self.options
    }

    /// Anomaly score in (0, 1]: higher is more anomalous.
    pub fn score(&self, row: &[f64]) -> Result<f64, Error> {
        let x = self.features.transform(row)?;
        let mut total = 0.0;
        for tree in &self.trees {
            total += path_length(tree, &x);
        }
        let mean = total / self.trees.len().max(1) as f64;
        Ok(2f64.powf(-mean / self.norm.max(f64::MIN_POSITIVE)))
    }
}

/// Grows the subtree over `rows` (indices into `data`) and returns its node index.
fn grow(
    data: &[Vec<f64>],
    rows: &mut [usize],
    depth: usize,
    limit: usize,
    width: usize,
    rng: &mut SplitMix64,
    nodes: &mut Vec<Node>,
) -> u32 {
    let at = nodes.len() as u32;
    let leaf = Node::Leaf {
        size: rows.len() as u32,
        adjust: c(rows.len()),
    };
    if depth >= limit || rows.len() <= 1 {
        nodes.push(leaf);
        return at;
    }
    // Features that still vary in this node; a node where none does cannot be split.
    let value = |r: usize, f: usize| {
        data.get(r)
            .and_then(|row| row.get(f))
            .copied()
            .unwrap_or(0.0)
    };
    let mut candidates: Vec<(usize, f64, f64)> = Vec::new();
    for f in 0..width {
        let (lo, hi) = rows
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &r| {
                let v = value(r, f);
                (lo.min(v), hi.max(v))
            });
        if hi > lo {
            candidates.push((f, lo, hi));
        }
    }
    if candidates.is_empty() {
        nodes.push(leaf);
        return at;
    }
    let Some(&(feature, lo, hi)) = candidates.get(rng.below(candidates.len())) else {
        nodes.push(leaf);
        return at;
    };
    let split = lo + (hi - lo) * rng.next_f64();
    let mut mid = 0;
    for i in 0..rows.len() {
        if value(rows.get(i).copied().unwrap_or(0), feature) < split {
            rows.swap(i, mid);
            mid += 1;
        }
    }
    nodes.push(Node::Split {
        feature: feature as u32,
        value: split,
        left: 0,
        right: 0,
    });
    let (l, r) = rows.split_at_mut(mid);
    let left = grow(data, l, depth + 1, limit, width, rng, nodes);
    let right = grow(data, r, depth + 1, limit, width, rng, nodes);
    if let Some(Node::Split {
        left: lref,
        right: rref,
        ..
    }) = nodes.get_mut(at as usize)
    {
        *lref = left;
        *rref = right;
    }
    at
}

fn path_length(tree: &[Node], x: &[f64]) -> f64 {
    let mut at = 0usize;
    let mut depth = 0.0;
    loop {
        match tree.get(at) {
            Some(Node::Split {
                feature,
                value,
                left,
                right,
            }) => {
                let v = x.get(*feature as usize).copied().unwrap_or(0.0);
                at = if v < *value { *left } else { *right } as usize;
                depth += 1.0;
            }
            Some(Node::Leaf { adjust, .. }) => return depth + adjust,
            None => return depth,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FeatureSpec, Tail};

    fn features() -> Features {
        Features::new(vec![
            FeatureSpec::new("x", Tail::Both, false),
            FeatureSpec::new("y", Tail::Both, false),
        ])
        .unwrap()
    }

    fn cloud(seed: u64, n: usize) -> Vec<Vec<f64>> {
        let mut r = SplitMix64::new(seed);
        (0..n)
            .map(|_| vec![r.next_f64() + r.next_f64(), r.next_f64() + r.next_f64()])
            .collect()
    }

    #[test]
    fn outliers_score_higher_than_the_bulk() {
        let f =
            IsolationForest::fit(features(), &cloud(1, 2_000), ForestOptions::default()).unwrap();
        let inside = f.score(&[1.0, 1.0]).unwrap();
        let outside = f.score(&[4.0, -2.0]).unwrap();
        assert!(inside < 0.5, "{inside}");
        assert!(outside > 0.65, "{outside}");
    }

    #[test]
    fn the_same_seed_grows_the_same_forest_and_another_seed_another() {
        let rows = cloud(2, 500);
        let o = ForestOptions {
            seed: 9,
            ..ForestOptions::default()
        };
        let a = IsolationForest::fit(features(), &rows, o).unwrap();
        let b = IsolationForest::fit(features(), &rows, o).unwrap();
        assert_eq!(a, b);
        let other =
            IsolationForest::fit(features(), &rows, ForestOptions { seed: 10, ..o }).unwrap();
        assert_ne!(a, other);
    }

    #[test]
    fn c_matches_the_paper() {
        // c(256) = 2 H(255) - 2·255/256 ≈ 10.2448 (H(i) ≈ ln i + γ).
        assert!((c(256) - 10.2448).abs() < 1e-3, "{}", c(256));
        assert_eq!(c(1), 0.0);
        assert_eq!(c(2), 1.0);
    }

    #[test]
    fn constant_data_and_too_little_data() {
        let rows = vec![vec![1.0, 1.0]; 100];
        let f = IsolationForest::fit(features(), &rows, ForestOptions::default()).unwrap();
        assert!(f.score(&[1.0, 1.0]).unwrap().is_finite());
        assert!(IsolationForest::fit(features(), &rows[..1], ForestOptions::default()).is_err());
    }
}

//! Detection for medsec's Defender, with no IO: everything here is a pure function of the data
//! it is given, so a baseline trained twice on the same data with the same seed is the same.
//!
//! - [`Features`]: the named features a model reads, each with the tail that is suspicious
//!   (latency-like metrics only when high; most metrics in either direction) and a transform.
//! - [`RobustBaseline`]: per-feature median and a robust scale (the larger of MAD and IQR,
//!   both 50 % breakdown estimators, so up to half of the training window can be poisoned without
//!   moving them far). Its score explains itself: the features that contributed most, each with
//!   the observed value, the baseline median and the deviation in robust standard deviations.
//! - [`IsolationForest`]: Liu, Ting and Zhou's isolation forest (ICDM 2008), seeded. Written here
//!   because the Rust crate for it (`extended-isolation-forest` 0.2) draws from an unseeded
//!   thread RNG and fixes the dimension at compile time; baselines must be reproducible and
//!   per device class.
//! - [`IdentityBinding`]: the identities (certificate, address, MAC) a device is known by; a
//!   flow from another is a deterministic finding, not a statistical one.
//! - [`metrics`]: ROC-AUC, best F1, recall at a false-positive budget.
//! - [`telemetry`]: the batch a device sends, and the checks it passes before it is stored.
//! - [`incident`]: alerts grouped into incidents, the NIST SP 800-61 lifecycle, response
//!   actions, and the EU CRA and HIPAA reporting clocks.
//! - [`rules`]: what each device class may do (allowlists, thresholds), checked on every batch;
//!   each alert names its rule, a MITRE ATT&CK for ICS technique and its evidence.

mod baseline;
pub mod binding;
pub mod evaluation;
mod forest;
pub mod incident;
pub mod learned;
pub mod metrics;
mod rng;
pub mod rules;
pub mod sigma;
pub mod telemetry;

pub use baseline::{
    Contribution, FeatureBaseline, FeatureSpec, Features, RobustBaseline, Scored, Tail,
};
pub use binding::{BindingViolation, IdentityBinding};
pub use forest::{ForestOptions, IsolationForest};
pub use rng::SplitMix64;

/// Why a model could not be built or used.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// Training needs at least this many rows.
    #[error("training needs at least {needed} rows, got {got}")]
    TooFewRows {
        /// Minimum.
        needed: usize,
        /// Given.
        got: usize,
    },
    /// A row's width differs from the feature list's.
    #[error("a row has {got} values, the features are {expected}")]
    Width {
        /// Number of features.
        expected: usize,
        /// Values in the row.
        got: usize,
    },
    /// A value is NaN or infinite.
    #[error("feature {feature:?} is not a finite number")]
    NotFinite {
        /// Which feature.
        feature: String,
    },
    /// The feature list is empty or names a feature twice.
    #[error("bad feature list: {reason}")]
    Features {
        /// What is wrong.
        reason: String,
    },
}

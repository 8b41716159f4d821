//! The one rule that decides whether a finding blocks a release: `medsec release check` applies
//! it with its `--fail-on` threshold, and the compliance report's vulnerability gaps are the
//! findings it blocks at the default threshold, so the gate and the report never disagree.
//!
//! - A finding a VEX statement resolves (not affected, fixed) never blocks.
//! - A known exploited one (listed in CISA KEV) blocks whatever its CVSS severity and whatever
//!   the threshold: an exploited flaw is fixed first, and a low score is no reason to ship it.
//! - Otherwise it blocks when its severity is at or above the threshold; an unscored finding
//!   only under `Any`. An undetermined match counts as a match (medsec could not rule it out).

/// The lowest severity that blocks a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Threshold {
    /// Any open finding, scored or not.
    Any,
    /// Low or above.
    Low,
    /// Medium or above.
    Medium,
    /// High or above.
    High,
    /// Critical (the default).
    Critical,
}

impl Threshold {
    /// The gate's default.
    pub const DEFAULT: Self = Self::Critical;

    /// The threshold a CVSS severity name reaches (`Any` for none or an unknown name).
    pub fn of_severity(severity: Option<&str>) -> Self {
        match severity {
            Some("critical") => Self::Critical,
            Some("high") => Self::High,
            Some("medium") => Self::Medium,
            Some("low") => Self::Low,
            _ => Self::Any,
        }
    }
}

/// Why a finding blocks a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// It is known to be exploited (CISA KEV).
    Exploited,
    /// Its severity reaches the threshold.
    Severity,
}

/// Whether an open (`open`: no VEX resolves it) finding of `severity`, known exploited or not,
/// blocks a release at `threshold`, and why.
pub fn blocks(
    open: bool,
    severity: Option<&str>,
    exploited: bool,
    threshold: Threshold,
) -> Option<Block> {
    if !open {
        None
    } else if exploited {
        Some(Block::Exploited)
    } else if threshold == Threshold::Any || Threshold::of_severity(severity) >= threshold {
        Some(Block::Severity)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exploited_findings_block_at_any_threshold_and_resolved_ones_never() {
        for t in [Threshold::Any, Threshold::Low, Threshold::Critical] {
            for severity in [None, Some("low"), Some("critical")] {
                assert_eq!(blocks(true, severity, true, t), Some(Block::Exploited));
                assert_eq!(blocks(false, severity, true, t), None);
            }
        }
        assert_eq!(blocks(true, Some("high"), false, Threshold::DEFAULT), None);
        assert_eq!(
            blocks(true, Some("critical"), false, Threshold::DEFAULT),
            Some(Block::Severity)
        );
        assert_eq!(blocks(true, None, false, Threshold::Low), None);
        assert_eq!(
            blocks(true, None, false, Threshold::Any),
            Some(Block::Severity)
        );
        assert_eq!(
            blocks(true, Some("medium"), false, Threshold::Medium),
            Some(Block::Severity)
        );
    }
}

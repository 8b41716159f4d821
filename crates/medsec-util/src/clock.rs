//! The wall clock as medsec records it: milliseconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch. A clock set before 1970 reads 0, and one past the year
/// 292 million reads `i64::MAX`: neither wraps into a plausible-looking time.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_clock_reads_after_2026_and_does_not_go_back() {
        let a = super::now_ms();
        let b = super::now_ms();
        assert!(a > 1_767_225_600_000, "{a}"); // 2026-01-01
        assert!(b >= a);
    }
}

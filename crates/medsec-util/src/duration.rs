//! Durations as medsec's command lines and settings write them: a whole positive number and a
//! unit, `90s`, `15m`, `24h` or `7d`.
//!
//! The unit is required. A bare `30` is refused rather than read as seconds: as a metadata expiry
//! or a token's lifetime it was meant as days or hours more often than not, and a key or token
//! that silently expires in 30 seconds (or lives 30 days where 30 minutes were meant) is worse
//! than an error that names the fix.

use std::time::Duration;

/// Parses `90s`, `15m`, `24h` or `7d` into a positive duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(format!(
            "{text:?} is not a duration: write a number and a unit, like 90s, 15m, 24h or 7d"
        ));
    }
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is too long a duration"))?;
    let scale: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "" => {
            return Err(format!(
                "{text:?} has no unit: write {n}s, {n}m, {n}h or {n}d"
            ));
        }
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    if n == 0 {
        return Err(format!("the duration {text:?} must be positive"));
    }
    // Bounded so the seconds fit an i64 (what the store and `time` hold).
    n.checked_mul(scale)
        .filter(|secs| i64::try_from(*secs).is_ok())
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long a duration"))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn each_unit_scales() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
    }

    #[test]
    fn a_bare_number_is_refused_and_the_error_names_the_fix() {
        let e = parse_duration("30").unwrap_err();
        assert!(e.contains("no unit") && e.contains("30d"), "{e}");
    }

    #[test]
    fn zero_unknown_units_signs_and_overflow_are_refused() {
        for bad in ["0s", "1w", "h", "", "-5m", "+5m", "5 m", "5mm", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_duration("99999999999999999999d").is_err());
        assert!(parse_duration("106751991167301d").is_err()); // past i64 seconds
    }

    proptest! {
        #[test]
        fn any_text_is_parsed_or_refused_without_panic(text in ".{0,24}") {
            let _ = parse_duration(&text);
        }

        #[test]
        fn what_is_written_reads_back(n in 1u64..1_000_000, unit in prop::sample::select(vec![("s", 1u64), ("m", 60), ("h", 3600), ("d", 86_400)])) {
            prop_assert_eq!(parse_duration(&format!("{n}{}", unit.0)), Ok(Duration::from_secs(n * unit.1)));
        }
    }
}

//! The helpers every medsec crate needs, each written once with one rule:
//!
//! - [`fs`]: replace a file atomically (temporary file, fsync, rename, fsync of the directory),
//!   flush a directory, clear what a crash left behind;
//! - [`clock`]: the wall clock in Unix milliseconds, as the store, the audit log and telemetry
//!   record time;
//! - [`duration`]: `90s`, `15m`, `24h`, `7d`, as every command line and setting writes a duration;
//! - [`clip`]: a message built from outside input, cut to a length fit for a log line.
//!
//! It does IO, so `medsec-crypto` (which stays free of IO) does not use it; it depends on nothing
//! of medsec's, so every other crate can.

pub mod clock;
pub mod duration;
pub mod fs;

pub use clock::now_ms;
pub use duration::parse_duration;
pub use fs::{Access, FsError, make_private, read_secret, write_atomic};

/// `text` cut to at most `max` bytes (on a character boundary), with a note of how much was
/// cut: for error messages that may quote outside input (a parser's error can quote a whole
/// 60 KB string value), before they reach a log line, an audit entry or an answer.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes)", &text[..end], text.len() - end)
}

#[cfg(test)]
mod tests {
    #[test]
    fn clip_keeps_short_text_and_cuts_long_text_on_a_character_boundary() {
        assert_eq!(super::clip("short", 10), "short");
        assert_eq!(super::clip("aaaaaaaaaa", 4), "aaaa… (6 more bytes)");
        // "é" is two bytes: a cut inside it moves back to its start.
        assert_eq!(super::clip("aé", 2), "a… (2 more bytes)");
    }
}

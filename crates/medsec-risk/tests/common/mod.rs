//! What the tests share.

use std::path::PathBuf;

/// `../shared/data/risk/SUB`, if this checkout has it. CI must (it fails there without it);
/// elsewhere the test says it skipped.
pub fn shared(sub: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/risk")
        .join(sub);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing: CI must have ../shared",
        path.display()
    );
    eprintln!("SKIPPED: {} is not here", path.display());
    None
}

//! What the tests share.

use std::path::PathBuf;

/// `testdata/risk/SUB` at the top of the repository: public test data copied from its upstream
/// projects (provenance and licence of each file in `testdata/MANIFEST.tsv`). It is part of the
/// repository, so a missing path is a broken checkout and fails the test.
pub fn fixture(sub: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/risk")
        .join(sub);
    assert!(
        path.exists(),
        "{} is missing: testdata/ is part of the repository (scripts/refresh-testdata.sh copies it)",
        path.display()
    );
    path
}

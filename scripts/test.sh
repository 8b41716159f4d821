#!/usr/bin/env bash
# Runs every medsec test: the whole workspace, including the interop tests against python-tuf.
# First it installs the system peers the tests need when they are missing
# (scripts/install-test-deps.sh, which CI calls too), and on first use creates .venv/ with
# python-tuf and univers (pinned in scripts/requirements-interop.txt).
# Every test binary runs even when an earlier one fails (--no-fail-fast); the last line counts the
# tests of all of them. Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
if ! .venv/bin/python -c "import tuf, securesystemslib.signer, univers, schemathesis, openapi_spec_validator" 2>/dev/null; then
  echo "setting up .venv with python-tuf, univers, schemathesis and openapi-spec-validator for the interop tests"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-interop.txt
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Library, binary and integration tests (the crates have no doctests; benches run with cargo bench).
status=0
cargo test --workspace --locked --no-fail-fast --lib --bins --tests "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole run. A test binary that died before its summary line (a crash,
# a signal) has no "test result" line: cargo lists it among the failed targets, and it counts as
# one failed test here so the total never reads clean.
awk '
  /^test result:/ { p += $4; f += $6; if ($6 > 0) fb++ }
  /^error: test failed, to rerun pass/ { tf = 1 }
  /^error: [0-9]+ targets? failed:/ { tf = $2 }
  END {
    if (tf > fb) { f += tf - fb; printf "%d test binary(ies) died without a summary line: each counts as one failed test\n", tf - fb }
    printf "%d passed, %d failed\n", p, f
  }' "$log"
if [ "$status" -ne 0 ] && ! grep -q '^test result:' "$log"; then
  echo "cargo test failed before any test ran (exit $status): see the errors above" >&2
fi
exit "$status"

#!/usr/bin/env bash
# Runs every medsec test: the whole workspace, including the interop tests against python-tuf.
# On first use it creates .venv/ with python-tuf and univers (pinned in scripts/requirements-interop.txt).
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c "import tuf, securesystemslib.signer, univers" 2>/dev/null; then
  echo "setting up .venv with python-tuf and univers for the interop tests"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-interop.txt
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Library, binary and integration tests (the crates have no doctests; benches run with cargo bench).
cargo test --workspace --locked --lib --bins --tests "$@" 2>&1 | tee "$log"
# One closing line for the whole run.
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"

#!/usr/bin/env bash
# Runs every medsec test: the whole workspace, including the interop tests against python-tuf.
# On first use it creates .venv/ with python-tuf (pinned in scripts/requirements-interop.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c "import tuf, securesystemslib.signer" 2>/dev/null; then
  echo "setting up .venv with python-tuf for the interop tests"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-interop.txt
fi
cargo test --workspace --locked "$@"

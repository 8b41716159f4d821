#!/usr/bin/env bash
# The Defender's detectors on WUSTL-EHMS-2020: the time split a deployment gets (thresholds from
# the training period, realised false positives on later traffic), then the random split beside
# scikit-learn's IsolationForest on the same training rows, then per-event scoring speed of both.
#
#   bash benches/defender_wustl.sh [SEEDS]      # default 5; prints Markdown
#
# Reads testdata/wustl-ehms-2020/ (part of the repository); needs python3 with venv; scikit-learn goes into
# .venv-defender/ (pinned in benches/requirements-defender.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-5}
data=testdata/wustl-ehms-2020/wustl-ehms-2020_with_attacks_categories.csv
if ! .venv-defender/bin/python -c "import sklearn" 2>/dev/null; then
  python3 -m venv .venv-defender
  .venv-defender/bin/pip install --quiet --disable-pip-version-check -r benches/requirements-defender.txt
fi
cargo build --release --locked -q -p medsec
split=$(mktemp -d)
trap 'rm -rf "$split"' EXIT
target/release/medsec defender evaluate --data "$data" --seeds "$seeds" --export-split "$split"
.venv-defender/bin/python benches/defender_wustl.py "$data" "$split" "$seeds" | sed '1s/^/(same split) /'
echo
cargo bench --locked -q -p medsec-defender --bench score 2>/dev/null

#!/usr/bin/env bash
# Copies the public test data the tests read from ../shared/data/ into testdata/, with a
# MANIFEST.tsv that keeps each file's source repository, commit, path, size and licence.
# Run it when a test needs another file from ../shared/data/ (add its folder to the lists below),
# then commit testdata/. The tests read testdata/ only, so a clone alone tests what it claims.
# Large corpora (risk/cisa-icsa/) stay outside: only benchmarks read them, from ../shared/data/.
set -euo pipefail
cd "$(dirname "$0")/.."
src=../shared/data
[ -d "$src" ] || { echo "$src is not here: nothing to copy from" >&2; exit 1; }

# Folders (under risk/) that the risk tests read. Keep this list to what a test names.
risk=(
  crossformat/redhat-csaf-osv
  crossformat/vexctl-spdx-csaf-openvex
  csaf/2.0/examples
  csaf/2.0/validator-testcases
  cvss/redhat-vectors
  cyclonedx/bom-examples/VEX
  cyclonedx/spec/testcases-1.6
  openvex/vexctl
  osv/ghsa-to-osv-pairs
  osv/linter-testdata
  spdx/2.3/examples
)

rm -rf testdata/risk testdata/wustl-ehms-2020
manifest=testdata/MANIFEST.tsv
printf 'local_path\trepo\tcommit\tsource_path\tbytes\tlicense\n' >"$manifest"
for d in "${risk[@]}"; do
  mkdir -p "testdata/risk/$d"
  cp -R "$src/risk/$d/." "testdata/risk/$d/"
  # Every copied file must have its provenance line in the upstream manifest.
  while IFS= read -r f; do
    rel=${f#testdata/risk/}
    line=$(awk -F'\t' -v p="$rel" '$1 == p' "$src/risk/MANIFEST.tsv")
    [ -n "$line" ] || { echo "no provenance for risk/$rel in $src/risk/MANIFEST.tsv" >&2; exit 1; }
    printf 'risk/%s\n' "$line" >>"$manifest"
  done < <(find "testdata/risk/$d" -type f | LC_ALL=C sort)
done

# WUSTL-EHMS-2020: the whole file (the defender evaluation's figures are over all 16,318 rows).
w=wustl-ehms-2020/wustl-ehms-2020_with_attacks_categories.csv
mkdir -p testdata/wustl-ehms-2020
cp "$src/$w" "testdata/$w"
cp "$src/wustl-ehms-2020/README.md" testdata/wustl-ehms-2020/README.md
printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$w" elahehmood/WUSTL-EHMS-IoMT-Security-Analysis - \
  wustl-ehms-2020_with_attacks_categories.csv "$(stat -c %s "$src/$w")" \
  "no explicit licence; published for research by Washington University in St. Louis (cite Hady et al., IEEE Access 8:106576, 2020)" >>"$manifest"
echo "testdata/: $(($(wc -l <"$manifest") - 1)) files, $(du -sh testdata | cut -f1)"

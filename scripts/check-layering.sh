#!/usr/bin/env bash
# The server's layering rule: the HTTP layer (crates/medsec-server/src/api/) depends on the
# services, never the other way, so that no file of the server imports in a circle.
# Files outside api/ that still name `crate::api` are listed below, each a debt to pay by moving
# its handlers into api/ (issue 19); this check fails when any other file starts to, and when a
# listed file no longer does (then take it off the list).
set -euo pipefail
cd "$(dirname "$0")/.."
src=crates/medsec-server/src
allowed=(mqtt.rs telemetry.rs)
status=0
for f in "$src"/*.rs; do
  name=$(basename "$f")
  uses=no
  grep -q 'crate::api\b' "$f" && uses=yes
  listed=no
  for a in "${allowed[@]}"; do [ "$a" = "$name" ] && listed=yes; done
  if [ "$uses" = yes ] && [ "$listed" = no ]; then
    echo "layering: $f imports crate::api; services must not depend on the HTTP layer" >&2
    status=1
  elif [ "$uses" = no ] && [ "$listed" = yes ]; then
    echo "layering: $f no longer imports crate::api: remove it from the list in $0" >&2
    status=1
  fi
done
[ "$status" -eq 0 ] && echo "layering: api/ depends on services; ${#allowed[@]} files still to move"
exit "$status"

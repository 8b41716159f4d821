#!/usr/bin/env bash
# The server's layering rule: the HTTP layer (crates/medsec-server/src/api/) depends on the
# services, never the other way, so no file of the server imports in a circle:
#   1. no file outside api/ names `crate::api` (lib.rs only mounts the routers it builds), nor
#      `crate::console` (the web console, console/, is HTTP too: it calls the API in-process);
#   2. no service imports axum: only api/, the accept loop (serve.rs) and lib.rs speak HTTP, and
#      state.rs, which caches EST's answer as the `Bytes` the handler sends.
# CI runs it (.ci/run); it prints each offending file.
set -euo pipefail
cd "$(dirname "$0")/.."
src=crates/medsec-server/src
http_ok=(lib.rs serve.rs state.rs)
status=0
for f in "$src"/*.rs; do
  name=$(basename "$f")
  if grep -q 'crate::api\b' "$f"; then
    echo "layering: $f imports crate::api; services must not depend on the HTTP layer" >&2
    status=1
  fi
  if grep -q 'crate::console\b' "$f" && [[ "$name" != lib.rs ]]; then
    echo "layering: $f imports crate::console; services must not depend on the web console" >&2
    status=1
  fi
  if grep -q '\baxum\b' "$f" && [[ ! " ${http_ok[*]} " == *" $name "* ]]; then
    echo "layering: $f uses axum; HTTP belongs in $src/api/" >&2
    status=1
  fi
done
[ "$status" -eq 0 ] && echo "layering: api/ and console/ depend on the services, and no service on them or axum"
exit "$status"

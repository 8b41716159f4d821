#!/usr/bin/env bash
# The agent's footprint: stripped binary size and peak RSS of one full install cycle (director
# and image repository refresh, download, slot write, trial boot, health check, commit, signed
# report) and of a no-change poll, against a real `medsec server`. Beside it, in the same run,
# curl (a named peer) making one mutual-TLS GET of the same director timestamp.
#
#   bash benches/agent_footprint.sh        # prints a Markdown table
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p medsec -p medsec-agent
bin=target/release
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT

# A fleet of 4 on 1.2.0 (the demo), then a 1.3.0 (4 MiB) to install.
"$bin/medsec" demo --devices 4 --dir "$work/d" > /dev/null
export MEDSEC_PASSPHRASE="$(cat "$work/d/passphrase.txt")"
head -c $((4 * 1024 * 1024)) /dev/urandom > "$work/fleet-fw-1.3.0.img"
"$bin/medsec" repo add-target "$work/d/repository" "$work/fleet-fw-1.3.0.img" \
  --path fleet-fw-1.3.0.img --hardware-id pump-rev-b --hardware-id monitor-m2 \
  --version 1.3.0 --release-counter 13 \
  --key "$work/d/repository/keys/targets-1.key" --key "$work/d/repository/keys/targets-2.key" > /dev/null
"$bin/medsec" repo timestamp "$work/d/repository" > /dev/null
"$bin/medsec" repo publish "$work/d/repository" --out "$work/d/www" > /dev/null

port=$((20000 + RANDOM % 20000))
MEDSEC_LOG=error "$bin/medsec" server --config "$work/d/medsec.toml" \
  --device-listen "127.0.0.1:$port" --operator-listen "127.0.0.1:$((port + 1))" > "$work/server.out" 2>&1 &
server=$!
for _ in $(seq 50); do grep -q "device port" "$work/server.out" && break; sleep 0.2; done
dev="$work/d/devices/pump-000"
sed -i "s#https://127.0.0.1:[0-9]*#https://127.0.0.1:$port#" "$dev/device.json"
"$bin/medsec" campaign create --config "$work/d/medsec.toml" --name fw-1.3 --version 1.3.0 \
  --release-counter 13 --target fleet-fw-1.3.0.img --device pump-000 --canary 1 > /dev/null
"$bin/medsec" campaign start fw-1.3 --config "$work/d/medsec.toml" > /dev/null

rss() { # peak RSS in KiB of a command
  /usr/bin/time -f "%M" -o "$work/rss" "$@" > /dev/null 2>&1
  cat "$work/rss"
}
size() { strip -o "$work/stripped" "$1"; stat -c %s "$work/stripped"; }

install_kib=$(rss "$bin/medsec-agent" run --once --dir "$dev")
grep -q "1.3.0 (release counter 13) active" <("$bin/medsec-agent" status --dir "$dev") \
  || { echo "the install did not complete" >&2; exit 1; }
poll_kib=$(rss "$bin/medsec-agent" run --once --dir "$dev")
# curl: the device's identity file holds its chain and key.
curl_kib=$(rss curl -sS --cacert "$dev/ca.pem" --cert "$dev/identity.pem" --key "$dev/identity.pem" \
  "https://127.0.0.1:$port/director/pump-000/timestamp.json")
agent_size=$(size "$bin/medsec-agent")
medsec_size=$(size "$bin/medsec")
curl_size=$(stat -c %s "$(command -v curl)")

echo "| what | peak RSS | stripped size |"
echo "|---|---|---|"
printf '| medsec-agent: install cycle (4 MiB image) | %.1f MiB | %.1f MiB |\n' \
  "$(echo "$install_kib / 1024" | bc -l)" "$(echo "$agent_size / 1048576" | bc -l)"
printf '| medsec-agent: no-change poll | %.1f MiB | |\n' "$(echo "$poll_kib / 1024" | bc -l)"
printf '| medsec (whole binary, for comparison) | | %.1f MiB |\n' "$(echo "$medsec_size / 1048576" | bc -l)"
printf '| curl: one mTLS GET of the same timestamp | %.1f MiB | %.2f MiB (plus shared libcurl, libssl) |\n' \
  "$(echo "$curl_kib / 1024" | bc -l)" "$(echo "$curl_size / 1048576" | bc -l)"

#!/usr/bin/env bash
# Loopback load: wrk with 64 connections against a catalog upstream directly, then through the
# sidecar (Host-based addressing, catalog all-v1 config), in one run; prints wrk's summary and
# latency percentiles for both and the sidecar's RSS (sampled during load, and its peak).
#
# Usage: benches/load.sh [DURATION_SECONDS]   (needs wrk: apt-get install -y wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)"; exit 1; }

cargo build --release --example sidecar --example catalog -q
bin=target/release/examples
upstream_port=19001

"$bin/catalog" --version v1 --listen "127.0.0.1:$upstream_port" >/dev/null &
catalog_pid=$!
config=$(mktemp -d)
sed "s/http: 9001/http: $upstream_port/" examples/mesh/catalog/00-registry.yaml >"$config/00-registry.yaml"
cp examples/mesh/catalog/10-all-v1.yaml "$config/"
"$bin/sidecar" --config "$config" --outbound 127.0.0.1:0 --admin 127.0.0.1:0 >"$config/out" 2>/dev/null &
sidecar_pid=$!
trap 'kill $catalog_pid $sidecar_pid 2>/dev/null; rm -rf "$config"' EXIT
for _ in $(seq 50); do grep -q "listening admin=" "$config/out" 2>/dev/null && break; sleep 0.1; done
outbound=$(sed -n 's/^listening outbound=//p' "$config/out")

echo "== direct: http://127.0.0.1:$upstream_port/items"
wrk -t2 -c64 -d"${duration}s" --latency "http://127.0.0.1:$upstream_port/items"

echo "== through the sidecar: http://$outbound/items (Host: catalog)"
( sleep $((duration / 2)); grep VmRSS "/proc/$sidecar_pid/status" | sed 's/^/sidecar during load: /' ) &
sampler=$!
wrk -t2 -c64 -d"${duration}s" --latency -H 'Host: catalog' "http://$outbound/items"
wait "$sampler"
grep -E 'VmHWM|VmRSS' "/proc/$sidecar_pid/status" | sed 's/^/sidecar after load: /'

#!/usr/bin/env bash
# Counts, under valgrind's callgrind, the instructions each request of a layer bench costs: a
# figure that, unlike a time, does not drift with a shared VM's speed, so that a change of a
# few percent shows in one run of each build. (Instructions are not time: a cache miss or a
# contended atomic costs far more than its one instruction. Compare times with compare.sh.)
#
# Only the service call and its future are counted (the request is built before, and each
# variant runs alone), so a variant's count less the no-op's is what its layer costs. A request
# is one poll of its future: this is for variants whose inner service answers at once.
#
# usage: benches/instructions.sh BENCH_BINARY VARIANT...
#   BENCH_BINARY: a layer bench executable (one of those built on `support/layer_bench.rs`),
#                 copied out of target/release/deps as for compare.sh;
#   VARIANT:      a benchmark id, e.g. resilience_layers/retry_istio_default.
# example:
#   benches/instructions.sh /tmp/resilience_layers resilience_layers/noop_service_alone \
#       resilience_layers/retry_istio_default
# needs: valgrind (callgrind_annotate comes with it) and python3.
set -euo pipefail

if [ $# -lt 2 ]; then
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
bin=$1
shift
[ -x "$bin" ] || { echo "instructions.sh: $bin is not an executable" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

printf '%-60s %14s\n' variant instructions
for variant in "$@"; do
    out="$work/callgrind"
    # Collect only inside the poll of the `Oneshot` each request is sent through.
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out" \
        --toggle-collect='*Oneshot*as*core::future::future::Future*poll*' \
        "$bin" --bench --profile-time 2 "^${variant}\$" >"$work/log" 2>&1 ||
        { cat "$work/log" >&2; exit 1; }
    # The bench's own thread is the first one; writer threads (the access log) are not counted.
    callgrind_annotate --tree=caller "$out-01" >"$work/tree"
    python3 - "$variant" "$work/tree" <<'EOF'
import re, sys

variant, path = sys.argv[1], sys.argv[2]
lines = open(path).read().split("\n")
total = requests = 0
for line in lines:
    if "PROGRAM TOTALS" in line and not total:
        total = int(line.split()[0].replace(",", ""))
    # The calls into the collected poll, one per request: its caller's line, which carries
    # all of the collected cost (whichever function the poll is inlined into) but what a
    # bench's setup sends through a `Oneshot` before it runs (a few requests).
    called = re.search(r"\((100\.0|99\.\d+)%\)\s+< .*\(([\d,]+)x\)( \[[^]]*\])?$", line)
    if called and not requests:
        requests = int(called.group(2).replace(",", ""))
if not requests:
    sys.exit(f"instructions.sh: no requests counted for {variant}")
print(f"{variant:60} {total / requests:14.0f}")
EOF
done

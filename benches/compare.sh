#!/usr/bin/env bash
# Compares two builds of one criterion bench on a machine whose speed drifts (a shared VM):
# runs build A and build B alternately, ROUNDS times each, and prints for every benchmark the
# median of A's and of B's criterion estimates, their ratio, and each one's fastest run.
#
# Alternating whole runs spreads the machine's slow and fast spells over both builds; the
# median says what a typical run sees, the fastest run what the code costs on a quiet machine.
#
# usage: benches/compare.sh ROUNDS FILTER BIN_A BIN_B
#   BIN_A, BIN_B: bench executables (copy them out of target/release/deps between builds:
#                 cargo reuses one path per bench);
#   FILTER:       a criterion filter, e.g. trace_extract_inject.
# example:
#   cargo bench --bench trace_propagation --no-run   # on the old commit, then copy the binary
#   benches/compare.sh 5 trace_extract_inject /tmp/old_trace /tmp/new_trace
set -euo pipefail

if [ $# -ne 4 ]; then
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
rounds=$1 filter=$2 a=$3 b=$4
for bin in "$a" "$b"; do
    [ -x "$bin" ] || { echo "compare.sh: $bin is not an executable" >&2; exit 2; }
done
samples=$(mktemp)
trap 'rm -f "$samples"' EXIT

# One run: "TAG BENCHMARK NANOSECONDS" per benchmark, from criterion's point estimate.
run() {
    "$2" --bench "$filter" --warm-up-time 1 --measurement-time 2 --noplot 2>/dev/null |
        awk -v tag="$1" '
            /^[A-Za-z0-9_]+\/[^ ]+/ { name = $1 }
            /time:/ {
                # "time: [low unit median unit high unit]", after the name or on its own line.
                for (i = 1; i <= NF && $i != "time:"; i++) {}
                value = $(i + 3); unit = $(i + 4)
                if (unit == "ps") value /= 1000
                if (unit == "µs" || unit == "us") value *= 1000
                if (unit == "ms") value *= 1000000
                if (unit == "s") value *= 1000000000
                print tag, name, value
            }'
}

for _ in $(seq "$rounds"); do
    run A "$a" >>"$samples"
    run B "$b" >>"$samples"
done

# The median of a file of sorted numbers, one a line.
median() { awk -f "$(dirname "$0")/median.awk" "$1"; }

printf '%-60s %10s %10s %6s %10s %10s\n' benchmark "A median" "B median" B/A "A fastest" "B fastest"
for name in $(awk '{print $2}' "$samples" | awk '!seen[$0]++'); do
    for tag in A B; do
        awk -v t="$tag" -v n="$name" '$1 == t && $2 == n {print $3}' "$samples" | sort -g >"$samples.$tag"
    done
    ma=$(median "$samples.A") mb=$(median "$samples.B")
    fa=$(head -1 "$samples.A") fb=$(head -1 "$samples.B")
    awk -v n="$name" -v ma="$ma" -v mb="$mb" -v fa="$fa" -v fb="$fb" \
        'BEGIN {printf "%-60s %10.1f %10.1f %6.2f %10.1f %10.1f\n", n, ma, mb, mb / ma, fa, fb}'
done
rm -f "$samples.A" "$samples.B"

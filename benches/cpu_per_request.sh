#!/usr/bin/env bash
# What a request of `in_process`'s network group costs in CPU time, user and kernel apart: the
# bench process's CPU time (its thread sending, the loopback upstream's thread answering, and
# what the kernel does for both) divided by the requests the upstream answered.
#
# Over loopback the bench's thread and the upstream's take turns, each working while the other
# waits, so a round trip's time is mostly CPU time, and the split says where it goes: a variant that runs more code shows
# as user time, one that makes more syscalls or moves more bytes as kernel time. (The kernel
# splits a thread's CPU time between the two by sampling, at each tick: over a run of seconds
# the split is close, not exact.) Each variant is run twice, briefly and for SECONDS; the
# difference of the two leaves out the process's setup. Variants take turns, ROUNDS times; the
# median of each figure is printed.
#
# usage: benches/cpu_per_request.sh BENCH_BINARY ROUNDS SECONDS VARIANT...
#   BENCH_BINARY: the in_process bench executable, copied out of target/release/deps;
#   VARIANT:      one of the in_process group's: hyper_client, mesh_client, ...
# example:
#   benches/cpu_per_request.sh /tmp/in_process 3 3 hyper_client mesh_client
# needs: GNU time (/usr/bin/time).
set -euo pipefail

if [ $# -lt 4 ]; then
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
bin=$1 rounds=$2 seconds=$3
shift 3
[ -x "$bin" ] || { echo "cpu_per_request.sh: $bin is not an executable" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "cpu_per_request.sh: needs GNU time (/usr/bin/time)" >&2; exit 2; }
samples=$(mktemp)
trap 'rm -f "$samples"' EXIT

# "REQUESTS USER_SECONDS SYSTEM_SECONDS" of one run of VARIANT for SECONDS.
run() {
    IN_PROCESS_REPORT_SERVED=1 /usr/bin/time -f 'cpu %U %S' \
        "$bin" --bench "^in_process/$1\$" --profile-time "$2" 2>&1 >/dev/null |
        awk '/^requests served:/ {n = $3} /^cpu / {u = $2; s = $3} END {print n, u, s}'
}

for _ in $(seq "$rounds"); do
    for variant in "$@"; do
        read -r n0 u0 s0 < <(run "$variant" 0.2)
        read -r n1 u1 s1 < <(run "$variant" "$seconds")
        awk -v v="$variant" -v n0="$n0" -v u0="$u0" -v s0="$s0" -v n1="$n1" -v u1="$u1" -v s1="$s1" \
            'BEGIN {n = n1 - n0; if (n <= 0) exit 1; u = (u1 - u0) * 1e6 / n; s = (s1 - s0) * 1e6 / n; print v, n, u + s, u, s}' \
            >>"$samples" || { echo "cpu_per_request.sh: $variant served no requests" >&2; exit 1; }
    done
done

# The median of the numbers in column COLUMN of VARIANT's samples.
median() {
    awk -v v="$1" -v c="$2" '$1 == v {print $c}' "$samples" | sort -g |
        awk -f "$(dirname "$0")/median.awk"
}

printf '%-45s %10s %10s %10s %10s\n' variant requests 'CPU µs' 'user µs' 'kernel µs'
for variant in "$@"; do
    printf '%-45s %10.0f %10.1f %10.1f %10.1f\n' "$variant" "$(median "$variant" 2)" \
        "$(median "$variant" 3)" "$(median "$variant" 4)" "$(median "$variant" 5)"
done

#!/usr/bin/env bash
# Counts, under valgrind's callgrind, the instructions each request of a layer bench costs: a
# figure that, unlike a time, does not drift with a shared VM's speed, so that a change of a
# few percent shows in one run of each build. (Instructions are not time: a cache miss or a
# contended atomic costs far more than its one instruction. Compare times with compare.sh.)
#
# With them, the code each request runs: the distinct 64-byte lines of machine code executed on
# (nearly) every request, in KiB. Code that runs once per request costs little in a bench loop,
# where it stays in the core's caches, but a server's request finds them cold and fetches each
# of those lines again (see `in_process_cold`): a smaller footprint is a cheaper request there.
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

printf '%-60s %14s %10s\n' variant instructions 'code KiB'
for variant in "$@"; do
    out="$work/callgrind"
    # Collect only inside the poll of the `Oneshot` each request is sent through.
    valgrind --tool=callgrind --separate-threads=yes --dump-instr=yes --callgrind-out-file="$out" \
        --toggle-collect='*Oneshot*as*core::future::future::Future*poll*' \
        "$bin" --bench --profile-time 2 "^${variant}\$" >"$work/log" 2>&1 ||
        { cat "$work/log" >&2; exit 1; }
    # The bench's own thread is the first one; writer threads (the access log) are not counted.
    callgrind_annotate --tree=caller "$out-01" >"$work/tree"
    python3 - "$variant" "$work/tree" "$out-01" <<'EOF'
import re, sys

variant, path, profile = sys.argv[1], sys.argv[2], sys.argv[3]
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

# Each instruction's count, by object and address. Cost lines start with an address (absolute,
# or relative to the previous line's); the line after a `calls=` line is the call's inclusive
# cost, not the call instruction's own, and is skipped.
executed, obj, address, call_cost = {}, None, 0, False
for line in open(profile):
    if line.startswith("ob="):
        obj = line[3:].split(")")[0]
    elif line.startswith("calls="):
        call_cost = True
    elif line[:1] in "0123456789+-*":
        fields = line.split()
        at = fields[0]
        if at.startswith("0x"):
            address = int(at, 16)
        elif at[0] in "+-":
            step = int(at[1:], 0)
            address += step if at[0] == "+" else -step
        if call_cost:
            call_cost = False
        elif len(fields) >= 3:
            executed[obj, address] = executed.get((obj, address), 0) + int(fields[2])
lines = {(o, a // 64) for (o, a), n in executed.items() if n >= 0.9 * requests}
print(f"{variant:60} {total / requests:14.0f} {len(lines) * 64 / 1024:10.1f}")
EOF
done

#!/usr/bin/env bash
# Benchmark: JS hello served for many apps at once. A lane keeps a realm per
# app within half its memory bound, so this is where realm reuse could turn
# into rebuilding: N apps (1, 8, 32, 64 by default) are deployed and loaded
# at the same time, the connections split between them, and the summed
# req/s and worst p99 are printed per N. Set FAZT_BIN to measure another
# fazt binary in the same way (e.g. one built before a change) and compare.
# Bounded: each N is WARMUP + SECONDS of load; everything is stopped by PID.
#
#   bash ops/bench/apps.sh [SECONDS] [CONNECTIONS] [APP COUNTS...]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_TARGET="${1:-5}"
CONNECTIONS="${2:-64}"
if [ $# -gt 2 ]; then shift 2; COUNTS=("$@"); else COUNTS=(1 8 32 64); fi
WARMUP=1

[ -n "${BENCH_NO_BUILD:-}" ] || cargo build --release --locked -p fazt -p fazt-bench >&2
source ops/bench/lib.sh
FAZT="${FAZT_BIN:-$BIN/fazt}"

echo "machine: $(nproc) cores; $CONNECTIONS connections split between the apps; ${SECONDS_PER_TARGET}s after ${WARMUP}s warm-up; fazt: $FAZT" >&2
for n in "${COUNTS[@]}"; do
  data="$work/data-$n"
  for i in $(seq 1 "$n"); do
    mkdir -p "$work/a$i/api"
    printf '({hello: "world"})\n' > "$work/a$i/api/main.js"
    FAZT_LOG=error "$FAZT" --data-dir "$data" app deploy "$work/a$i" >/dev/null
  done
  start "fazt-$n" env FAZT_LOG=warn "$FAZT" --data-dir "$data" supervise --listen 127.0.0.1:0
  addr=$(address_of "fazt-$n" "fazt ready on http://")
  per=$(( CONNECTIONS / n > 0 ? CONNECTIONS / n : 1 ))
  loads=()
  for i in $(seq 1 "$n"); do
    "$BIN/loadgen" "http://$addr/_app/a$i/api" --connections "$per" \
      --seconds "$SECONDS_PER_TARGET" --warmup "$WARMUP" > "$work/load-$n-$i.json" &
    loads+=($!)
  done
  for pid in "${loads[@]}"; do wait "$pid"; done
  stop_last
  python3 - "$n" "$work"/load-"$n"-*.json <<'PY'
import json, sys
n, files = sys.argv[1], sys.argv[2:]
runs = [json.load(open(f)) for f in files]
rps = sum(r["rps"] for r in runs)
bad = sum(r["bad_status"] + r["errors"] for r in runs)
print(f"{n:>3} apps  {rps:>9.0f} req/s  worst p99 {max(r['p99_us'] for r in runs) / 1000:7.2f} ms  bad/errors {bad}")
PY
done

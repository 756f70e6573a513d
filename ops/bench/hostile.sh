#!/usr/bin/env bash
# Hostile clients against fazt, on loopback, with the supervisor's RSS
# sampled (SPEC §3 front-door bounds; issue "harden what is there"):
#   uploads    100 clients each sending an 8 MiB body slowly
#   downloads  50 clients that never read a 20 MiB static file
#   slowloris  150 connections with a partial request head
# A normal client fetches a small static file every 200 ms throughout; its
# slowest answer is reported. Each scenario is bounded by its hold time.
#
#   bash ops/bench/hostile.sh [HOLD_SECONDS]   (default 12, past the 10 s head timeout)
set -euo pipefail
cd "$(dirname "$0")/../.."
HOLD="${1:-12}"

cargo build --release --locked -p fazt -p fazt-bench >&2
source ops/bench/lib.sh

mkdir -p "$work/bench/api"
printf '{"hello":"world"}' > "$work/bench/hello.json"
head -c $((20 * 1024 * 1024)) /dev/zero > "$work/bench/big.bin"
printf '({bytes: request.body ? request.body.length : 0})\n' > "$work/bench/api/main.js"
data="$work/data"
FAZT_LOG=warn "$BIN/fazt" --data-dir "$data" app deploy "$work/bench" >&2

echo "machine: $(nproc) cores; hold ${HOLD}s; a fresh supervisor per scenario" >&2
for scenario in uploads downloads slowloris; do
  start fazt env FAZT_LOG=error "$BIN/fazt" --data-dir "$data" supervise --listen 127.0.0.1:0
  pid=${pids[-1]}
  fazt=$(address_of fazt "fazt ready on http://")
  "$BIN/hostile" "$fazt" --pid "$pid" --scenario "$scenario" --hold-seconds "$HOLD"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -f "$work/fazt.out"
done

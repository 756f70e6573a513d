#!/usr/bin/env bash
# Recovery numbers (measured, not asserted), under a load of four clients:
# kill -9 a worker, KILLS times, each on a fresh supervisor (restarts close
# together back off on purpose): time until its slot is ready again and the
# requests it cost; then a rolling reload (SIGHUP): failed requests and the
# p99 it adds. Prints the medians.
#
#   bash ops/bench/recovery.sh [KILLS]
set -euo pipefail
cd "$(dirname "$0")/../.."
KILLS="${1:-20}"

cargo build --release --locked -p fazt -p fazt-bench >&2
source ops/bench/lib.sh

mkdir -p "$work/bench/api"
printf 'const end = Date.now() + 5; while (Date.now() < end) {} ({ok: 1})\n' > "$work/bench/api/main.js"
data="$work/data"
FAZT_LOG=error "$BIN/fazt" --data-dir "$data" limits set runtime.workers 2 >&2
FAZT_LOG=error "$BIN/fazt" --data-dir "$data" app deploy "$work/bench" >&2

measure() { # mode
  start fazt env FAZT_LOG=error "$BIN/fazt" --data-dir "$data" supervise --listen 127.0.0.1:0
  local pid=${pids[-1]} addr
  addr=$(address_of fazt "fazt ready on http://")
  "$BIN/recovery" "$addr" --pid "$pid" --fazt "$BIN/fazt" --data "$data" --mode "$1"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -f "$work/fazt.out"
}

echo "machine: $(nproc) cores; 2 workers; $KILLS kills; 4 clients" >&2
for _ in $(seq 1 "$KILLS"); do measure kill; done > "$work/kills.jsonl"
measure reload > "$work/reload.json"
python3 - "$work/kills.jsonl" "$work/reload.json" <<'PY'
import json, statistics, sys
kills = [json.loads(l) for l in open(sys.argv[1])]
reload = json.load(open(sys.argv[2]))
ready = sorted(k["kill_to_ready_ms"] for k in kills)
failed = [k["failed"] for k in kills]
print(f"kill -9 → ready: median {statistics.median(ready):.0f} ms, max {ready[-1]:.0f} ms ({len(kills)} kills)")
print(f"requests failed per kill: median {statistics.median(failed):.0f}, max {max(failed)}")
print(f"reload: {reload['reload_ms']:.0f} ms, {reload['failed']} of {reload['requests_during']} requests failed, "
      f"p99 {reload['p99_ms_before']:.1f} ms before → {reload['p99_ms_during']:.1f} ms during")
PY

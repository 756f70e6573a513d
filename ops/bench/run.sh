#!/usr/bin/env bash
# Benchmark: fazt's JS hello and static file against a bare hyper hello
# server built in the same run, on loopback. Prints one line per target and
# the ratios. Bounded: each target gets WARMUP + SECONDS of load.
#
#   bash ops/bench/run.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_TARGET="${1:-10}"
CONNECTIONS="${2:-32}"
WARMUP=2

cargo build --release --locked -p fazt -p fazt-bench >&2
source ops/bench/lib.sh

# The bench app answers what the bare server answers.
mkdir -p "$work/bench/api"
printf '{"hello":"world"}' > "$work/bench/hello.json"
printf '({hello: "world"})\n' > "$work/bench/api/main.js"
data="$work/data"
FAZT_LOG=warn "$BIN/fazt" --data-dir "$data" app deploy "$work/bench" >&2

start bare "$BIN/bare-hyper" 127.0.0.1:0
start fazt env FAZT_LOG=warn "$BIN/fazt" --data-dir "$data" supervise --listen 127.0.0.1:0
bare=$(address_of bare "listening on ")
fazt=$(address_of fazt "fazt ready on http://")

echo "machine: $(nproc) cores; $CONNECTIONS connections; ${SECONDS_PER_TARGET}s per target after ${WARMUP}s warm-up" >&2
bare_json=$(load "bare-hyper  " "http://$bare/" "$CONNECTIONS")
js_json=$(load   "fazt-js     " "http://$fazt/_app/bench/api" "$CONNECTIONS")
static_json=$(load "fazt-static " "http://$fazt/_app/bench/hello.json" "$CONNECTIONS")

python3 - "$bare_json" "$js_json" "$static_json" <<'PY'
import json, sys
bare, js, static = (json.loads(a) for a in sys.argv[1:4])
for name, r in (("bare hyper", bare), ("fazt JS hello", js), ("fazt static", static)):
    print(f"{name:14} {r['rps']:>10.0f} req/s  p50 {r['p50_us']/1000:6.2f} ms  p99 {r['p99_us']/1000:6.2f} ms  bad {r['bad_status']}  errors {r['errors']}")
print(f"ratio JS/bare     {js['rps']/bare['rps']:.2f}  (target >= 0.5)")
print(f"ratio static/bare {static['rps']/bare['rps']:.2f}  (target >= 0.8)")
PY

#!/usr/bin/env bash
# Benchmark: fazt's JS hello and static file against a bare hyper hello
# server built in the same run, and against the peers users choose between:
# Node's cluster (2 workers, as PM2 runs it) and Cloudflare's workerd (2
# processes), each answering the same JSON hello, on loopback. Prints one
# line per target and the ratios; each target's line is the median of RUNS
# runs. Bounded: each run is WARMUP + SECONDS of load. Peers are installed
# from ops/bench/peers/package-lock.json (npm ci); a machine without
# Node.js skips them and says so.
#
#   bash ops/bench/run.sh [SECONDS] [CONNECTIONS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_TARGET="${1:-10}"
CONNECTIONS="${2:-64}"
RUNS="${3:-1}"
WARMUP=2

cargo build --release --locked -p fazt -p fazt-bench >&2
source ops/bench/lib.sh

peers=yes
if command -v npm >/dev/null && command -v node >/dev/null; then
  npm ci --prefix ops/bench/peers --no-audit --no-fund --silent >&2
  WORKERD=$(ls ops/bench/peers/node_modules/@cloudflare/workerd-*/bin/workerd | head -1)
else
  echo "no Node.js here: the Node and workerd peers are skipped" >&2
  peers=
fi

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
if [ -n "$peers" ]; then
  start node node ops/bench/peers/node-cluster.js 127.0.0.1:0 2
  node_addr=$(address_of node "listening on ")
  # Two workerd processes, each on a port of its own (workerd has no
  # shared-port mode); the load is split between them.
  read -r wd1 wd2 < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))
for x in s: x.close()')
  start wd1 "$WORKERD" serve ops/bench/peers/workerd.capnp --socket-addr "http=127.0.0.1:$wd1"
  start wd2 "$WORKERD" serve ops/bench/peers/workerd.capnp --socket-addr "http=127.0.0.1:$wd2"
  for port in "$wd1" "$wd2"; do
    for _ in $(seq 1 100); do
      curl -sf "http://127.0.0.1:$port/" >/dev/null && break
      sleep 0.1
    done
  done
fi

# The median run of RUNS for one target (by req/s).
median() { # label, url, connections
  local runs=()
  for _ in $(seq 1 "$RUNS"); do runs+=("$(load "$1" "$2" "$3")"); done
  python3 -c '
import json, sys
runs = sorted((json.loads(a) for a in sys.argv[1:]), key=lambda r: r["rps"])
print(json.dumps(runs[len(runs) // 2]))' "${runs[@]}"
}
# workerd's two processes loaded at once, half the connections each:
# req/s add up, the worse p50/p99 counts.
median_pair() { # label, url1, url2, connections
  local runs=() half=$(( $4 / 2 ))
  for _ in $(seq 1 "$RUNS"); do
    local a b
    a=$(mktemp); b=$(mktemp)
    load "$1" "$2" "$half" > "$a" &
    local pa=$!
    load "$1" "$3" "$half" > "$b"
    wait "$pa"
    runs+=("$(python3 -c '
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
print(json.dumps({"rps": a["rps"] + b["rps"], "p50_us": max(a["p50_us"], b["p50_us"]),
  "p99_us": max(a["p99_us"], b["p99_us"]), "bad_status": a["bad_status"] + b["bad_status"],
  "errors": a["errors"] + b["errors"]}))' "$a" "$b")")
    rm -f "$a" "$b"
  done
  python3 -c '
import json, sys
runs = sorted((json.loads(a) for a in sys.argv[1:]), key=lambda r: r["rps"])
print(json.dumps(runs[len(runs) // 2]))' "${runs[@]}"
}

echo "machine: $(nproc) cores; $CONNECTIONS connections; ${SECONDS_PER_TARGET}s per run after ${WARMUP}s warm-up; median of $RUNS" >&2
bare_json=$(median "bare-hyper  " "http://$bare/" "$CONNECTIONS")
js_json=$(median   "fazt-js     " "http://$fazt/_app/bench/api" "$CONNECTIONS")
static_json=$(median "fazt-static " "http://$fazt/_app/bench/hello.json" "$CONNECTIONS")
node_json=null
workerd_json=null
if [ -n "$peers" ]; then
  node_json=$(median "node-cluster" "http://$node_addr/" "$CONNECTIONS")
  workerd_json=$(median_pair "workerd x2  " "http://127.0.0.1:$wd1/" "http://127.0.0.1:$wd2/" "$CONNECTIONS")
fi

python3 - "$bare_json" "$js_json" "$static_json" "$node_json" "$workerd_json" <<'PY'
import json, sys
bare, js, static, node, workerd = (json.loads(a) for a in sys.argv[1:6])
rows = [("bare hyper", bare), ("Node cluster x2", node), ("workerd x2", workerd),
        ("fazt JS hello", js), ("fazt static", static)]
for name, r in rows:
    if r is None:
        print(f"{name:16} skipped")
        continue
    print(f"{name:16} {r['rps']:>10.0f} req/s  p50 {r['p50_us']/1000:7.2f} ms  p99 {r['p99_us']/1000:7.2f} ms  bad {r['bad_status']}  errors {r['errors']}")
print(f"ratio JS/bare        {js['rps']/bare['rps']:.2f}  (target >= 0.5)")
print(f"ratio static/bare    {static['rps']/bare['rps']:.2f}  (target >= 0.8)")
if workerd:
    print(f"ratio JS/workerd x2  {js['rps']/workerd['rps']:.2f}  (target >= 1.0, p99 <= 10 ms)")
if node:
    print(f"ratio JS/Node x2     {js['rps']/node['rps']:.2f}  (stretch >= 1.0)")
PY

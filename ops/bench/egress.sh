#!/usr/bin/env bash
# Egress numbers (measured, not asserted), on loopback only: upstreams are
# reached through FAZT_NET_TEST_RESOLVE pins to 127.0.0.1.
#
# 1. Added latency of fazt.net.fetch: one client, a JS app that fetches a
#    local upstream, against the same app without the fetch and against a
#    direct call to the upstream (p50, p99).
# 2. I/O-bound throughput: CLIENTS clients against an app whose request
#    makes one fetch to an upstream answering after 200 ms; the ideal is
#    CLIENTS / 0.2 s. Run with 4 lanes per worker (half the default)
#    and with 64: lanes blocked on the network use no CPU, so
#    more lanes are the way to more fetches in flight; the worker RSS per
#    added lane is printed as its cost.
#
#   bash ops/bench/egress.sh [SECONDS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_TARGET="${1:-10}"
CLIENTS="${2:-100}"

cargo build --release --locked -p fazt -p fazt-bench >&2
source ops/bench/lib.sh

start up0 "$BIN/bare-hyper" 127.0.0.1:0
start up200 "$BIN/bare-hyper" 127.0.0.1:0 200
up0=$(address_of up0 "listening on ")
up200=$(address_of up200 "listening on ")
p0=${up0##*:}
p200=${up200##*:}

data="$work/data"
app nofetch '({hello: "world"})'
app fetch0 "fazt.net.fetch(\"http://up.bench.test:$p0/\").json()"
app fetch200 "fazt.net.fetch(\"http://up.bench.test:$p200/\").json()"
fazt net allow up.bench.test --http
fazt limits set runtime.workers 2
fazt limits set net.app_concurrency 200
fazt limits set net.concurrency 200
pins="up.bench.test:$p0=127.0.0.1:$p0,up.bench.test:$p200=127.0.0.1:$p200"

worker_rss_kib() { # sum of VmRSS over the worker processes, KiB
  FAZT_LOG=error "$BIN/fazt" --data-dir "$data" workers status --json |
    python3 -c '
import json, sys
pids = [c["pid"] for c in json.load(sys.stdin)["data"]["children"] if c["kind"] == "worker" and c["pid"]]
total = 0
for pid in pids:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            total += int(line.split()[1])
print(total)'
}
# Runs fazt with LANES lanes per worker, loads it, prints "rss_kib json..."
# for the I/O-bound run; the one-client runs only at the first call.
with_lanes() { # lanes, name
  fazt limits set runtime.lanes "$1"
  start "$2" env FAZT_LOG=error FAZT_NET_TEST_RESOLVE="$pins" \
    "$BIN/fazt" --data-dir "$data" supervise --listen 127.0.0.1:0
  addr=$(address_of "$2" "fazt ready on http://")
}

with_lanes 4 fazt4
idle4=$(worker_rss_kib)
io4=$(load "io-bound, 4 lanes " "http://$addr/_app/fetch200/api" "$CLIENTS")
stop_last

with_lanes 64 fazt64
idle64=$(worker_rss_kib)
direct=$(load "direct   " "http://$up0/" 1)
plain=$(load "no fetch " "http://$addr/_app/nofetch/api" 1)
fetched=$(load "one fetch" "http://$addr/_app/fetch0/api" 1)
io=$(load "io-bound, 64 lanes" "http://$addr/_app/fetch200/api" "$CLIENTS")
busy64=$(worker_rss_kib)

python3 - "$direct" "$plain" "$fetched" "$io" "$io4" "$CLIENTS" "$idle4" "$idle64" "$busy64" <<'PY'
import json, sys
direct, plain, fetched, io, io4 = (json.loads(a) for a in sys.argv[1:6])
clients = int(sys.argv[6])
idle4, idle64, busy64 = (int(a) for a in sys.argv[7:10])
ms = lambda us: us / 1000
print(f"direct call to the upstream   p50 {ms(direct['p50_us']):6.2f} ms  p99 {ms(direct['p99_us']):6.2f} ms")
print(f"JS app without fetch          p50 {ms(plain['p50_us']):6.2f} ms  p99 {ms(plain['p99_us']):6.2f} ms")
print(f"JS app with one fetch         p50 {ms(fetched['p50_us']):6.2f} ms  p99 {ms(fetched['p99_us']):6.2f} ms")
print(f"added by fazt.net.fetch       p50 {ms(fetched['p50_us'] - plain['p50_us']):6.2f} ms  p99 {ms(fetched['p99_us'] - plain['p99_us']):6.2f} ms"
      f"  ({(fetched['p50_us'] - plain['p50_us']) / max(direct['p50_us'], 1):.1f}x a direct call at p50)")
ideal = clients / 0.2
for lanes, r in ((4, io4), (64, io)):
    print(f"I/O-bound, {clients} clients, upstream 200 ms, 2 workers x {lanes:2} lanes: {r['rps']:6.1f} req/s"
          f" of an ideal {ideal:.0f} = {r['rps'] / ideal:.2f} (target >= 0.95); bad {r['bad_status']}, errors {r['errors']}")
print(f"worker RSS, 2 workers: idle with 4 lanes {idle4 / 1024:.1f} MiB, idle with 64 lanes {idle64 / 1024:.1f} MiB,"
      f" after the 64-lane run {busy64 / 1024:.1f} MiB; per added lane {(busy64 - idle4) / 120:.0f} KiB")
PY

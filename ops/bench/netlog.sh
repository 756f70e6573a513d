#!/usr/bin/env bash
# Network log and cache numbers (measured, not asserted), on loopback only.
#
# 1. Log throughput: fetches/s sustained by CLIENTS clients on an app that
#    makes one fetch per request, with the network log on, against the
#    same fazt built with the bench-only feature `bench-no-net-log` (egress
#    sends no rows; a separate target dir, never a build operators run).
# 2. Cache: one client on an app whose fetch is answered from the cache
#    (a hit after the first) against the same upstream without a cache.
#
#   bash ops/bench/netlog.sh [SECONDS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_TARGET="${1:-10}"
CLIENTS="${2:-32}"

cargo build --release --locked -p fazt -p fazt-bench >&2
echo "building the no-log variant (target/bench-no-net-log)..." >&2
cargo build --release --locked -p fazt --features bench-no-net-log \
  --target-dir target/bench-no-net-log >&2
NOLOG=target/bench-no-net-log/release/fazt
source ops/bench/lib.sh

start up "$BIN/bare-hyper" 127.0.0.1:0
up=$(address_of up "listening on ")
p=${up##*:}

data="$work/data"
app fetch "fazt.net.fetch(\"http://plain.bench.test:$p/\").json()"
app cached "fazt.net.fetch(\"http://cached.bench.test:$p/\").json()"
fazt net allow plain.bench.test --http
fazt net allow cached.bench.test --http --cache-ttl 3600
fazt limits set runtime.workers 2
fazt limits set runtime.lanes 32
fazt limits set net.app_concurrency 200
fazt limits set net.concurrency 200
fazt limits set net.cache_max_items 100
fazt limits set net.cache_max_bytes 1MiB
pins="plain.bench.test:$p=127.0.0.1:$p,cached.bench.test:$p=127.0.0.1:$p"

run_fazt() { # name, binary
  start "$1" env FAZT_LOG=error FAZT_NET_TEST_RESOLVE="$pins" \
    "$2" --data-dir "$data" supervise --listen 127.0.0.1:0
  addr=$(address_of "$1" "fazt ready on http://")
}

run_fazt nolog "$NOLOG"
off=$(load "log off " "http://$addr/_app/fetch/api" "$CLIENTS")
stop_last

run_fazt fazt "$BIN/fazt"
on=$(load "log on  " "http://$addr/_app/fetch/api" "$CLIENTS")
miss=$(load "miss    " "http://$addr/_app/fetch/api" 1)
hit=$(load "hit     " "http://$addr/_app/cached/api" 1)
rows=$(FAZT_LOG=error "$BIN/fazt" --data-dir "$data" net stats --json)

python3 - "$off" "$on" "$miss" "$hit" "$rows" "$CLIENTS" <<'PY'
import json, sys
off, on, miss, hit, rows = (json.loads(a) for a in sys.argv[1:6])
clients = sys.argv[6]
ms = lambda us: us / 1000
print(f"fetches/s, {clients} clients, log off  {off['rps']:8.0f}  (bad {off['bad_status']}, errors {off['errors']})")
print(f"fetches/s, {clients} clients, log on   {on['rps']:8.0f}  (bad {on['bad_status']}, errors {on['errors']})")
print(f"log on / log off                   {on['rps'] / max(off['rps'], 1):8.2f}")
dropped = sum(s['dropped']['dropped'] + s['dropped']['errors_dropped'] + s['dropped']['lost'] for s in rows['data'])
logged = sum(s['calls'] for s in rows['data'])
print(f"rows logged {logged}, rows dropped {dropped}")
print(f"cache miss (fetch each time)   p50 {ms(miss['p50_us']):6.2f} ms  p99 {ms(miss['p99_us']):6.2f} ms")
print(f"cache hit                      p50 {ms(hit['p50_us']):6.2f} ms  p99 {ms(hit['p99_us']):6.2f} ms"
      f"  ({miss['p50_us'] / max(hit['p50_us'], 1):.2f}x faster at p50)")
PY

#!/usr/bin/env bash
# What a secret costs (measured, not asserted), on loopback only: one
# client, a JS app fetching a 1 MiB response from a local upstream, with
# and without `auth` (egress injects the secret and scrubs the 1 MiB
# answer for it before JS gets it). Then rate-bucket memory per 10 000
# (app, domain) pairs.
#
#   bash ops/bench/secrets.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_TARGET="${1:-10}"

cargo build --release --locked -p fazt -p fazt-bench >&2
source ops/bench/lib.sh

start up "$BIN/bare-hyper" 127.0.0.1:0 0 1048576
up=$(address_of up "listening on ")
p=${up##*:}

data="$work/data"
app plain "({n: fazt.net.fetch(\"http://up.bench.test:$p/\").body.length})"
app secret "({n: fazt.net.fetch(\"http://up.bench.test:$p/\", {auth: \"K\"}).body.length})"
fazt net allow up.bench.test --http --max-response 2MiB
printf 'sk_bench_0123456789abcdefghijklmnop' | fazt secret set K - --domain up.bench.test
fazt limits set runtime.workers 2

start fazt env FAZT_LOG=error FAZT_NET_TEST_RESOLVE="up.bench.test:$p=127.0.0.1:$p" \
  "$BIN/fazt" --data-dir "$data" supervise --listen 127.0.0.1:0
addr=$(address_of fazt "fazt ready on http://")

plain=$(load "without a secret" "http://$addr/_app/plain/api" 1)
secret=$(load "with a secret   " "http://$addr/_app/secret/api" 1)

python3 - "$plain" "$secret" <<'PY'
import json, sys
plain, secret = (json.loads(a) for a in sys.argv[1:3])
ms = lambda us: us / 1000
for label, r in (("fetch of 1 MiB, no secret    ", plain), ("fetch of 1 MiB, secret + scrub", secret)):
    print(f"{label}  p50 {ms(r['p50_us']):6.2f} ms  p99 {ms(r['p99_us']):6.2f} ms  ({r['rps']:.0f} req/s, bad {r['bad_status']}, errors {r['errors']})")
print(f"added by the secret          p50 {ms(secret['p50_us'] - plain['p50_us']):6.2f} ms  p99 {ms(secret['p99_us'] - plain['p99_us']):6.2f} ms"
      f"  (x{secret['p50_us'] / max(plain['p50_us'], 1):.2f} at p50)")
PY
"$BIN/rate-buckets"

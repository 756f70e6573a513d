#!/usr/bin/env bash
# Benchmark: fazt against a bare hyper server built in the same run and
# against the peers users choose between — Node's cluster (2 workers, as PM2
# runs it) and Cloudflare's workerd — on loopback, in three scenarios:
#   JS hello      bare hyper, Node cluster, workerd x1 and x2, fazt
#   static 4 KiB  bare hyper, Node cluster, fazt
#   kv read+write Node cluster + SQLite (better-sqlite3), fazt (fazt.app.kv)
# and the memory (RSS of each server's process tree) idle and after its load.
# Each line is the median of RUNS runs; each run is WARMUP + SECONDS of load,
# so the whole run is bounded. Prints a table and the ratios, and writes
# everything to a JSON file. Peers are installed from
# ops/bench/peers/package-lock.json (npm ci, the npm registry only); a
# machine without Node.js skips them and says so. Every server is stopped
# by PID on exit.
#
#   bash ops/bench/run.sh [--quick] [--seconds N] [--connections N] [--runs N] [--json PATH]
#   bash ops/bench/run.sh [SECONDS] [CONNECTIONS] [RUNS]
set -euo pipefail

usage() {
  cat <<'EOF'
usage: ops/bench/run.sh [--quick] [--seconds N] [--connections N] [--runs N] [--json PATH]
       ops/bench/run.sh [SECONDS] [CONNECTIONS] [RUNS]

  --quick          smoke test: target/debug binaries, no cargo, 1 s warm-up,
                   2 s per target, 1 run; exits non-zero unless the JSON has
                   every key and fazt served every scenario with no error
  --seconds N      seconds of load per run after the warm-up (default 10)
  --connections N  keep-alive connections per target (default 64)
  --runs N         runs per target; the median is reported (default 3)
  --json PATH      where the JSON goes (default target/bench/run.json,
                   target/bench/run-quick.json with --quick)

environment:
  FAZT_BIN=PATH    measure this fazt binary instead of BIN_DIR/fazt
  BENCH_BIN_DIR=D  take loadgen, bare-hyper (and fazt) from D
                   (default target/release, target/debug with --quick)
  BENCH_NO_BUILD=1 do not run cargo build (the binaries must exist)

Defaults take about 6 minutes of load (10 targets x 3 runs x 12 s).
EOF
}

# Paths given by the caller are relative to where it stands, not the repo.
here=$PWD
absolute() { case $1 in /*) echo "$1" ;; *) echo "$here/$1" ;; esac; }

QUICK=
SECONDS_PER_TARGET=
CONNECTIONS=
RUNS=
JSON_OUT=
positional=()
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1 ;;
    --seconds) SECONDS_PER_TARGET=${2:?--seconds needs a value}; shift ;;
    --connections) CONNECTIONS=${2:?--connections needs a value}; shift ;;
    --runs) RUNS=${2:?--runs needs a value}; shift ;;
    --json) JSON_OUT=$(absolute "${2:?--json needs a path}"); shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "unknown flag $1" >&2; usage >&2; exit 2 ;;
    *) positional+=("$1") ;;
  esac
  shift
done
[ ${#positional[@]} -le 3 ] || { usage >&2; exit 2; }
SECONDS_PER_TARGET=${SECONDS_PER_TARGET:-${positional[0]:-}}
CONNECTIONS=${CONNECTIONS:-${positional[1]:-64}}
RUNS=${RUNS:-${positional[2]:-}}
if [ -n "$QUICK" ]; then
  SECONDS_PER_TARGET=${SECONDS_PER_TARGET:-2}; RUNS=${RUNS:-1}; WARMUP=1
else
  SECONDS_PER_TARGET=${SECONDS_PER_TARGET:-10}; RUNS=${RUNS:-3}; WARMUP=2
fi
for n in "$SECONDS_PER_TARGET" "$CONNECTIONS" "$RUNS"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "not a positive number: $n" >&2; exit 2; }
done
[ -z "${FAZT_BIN:-}" ] || FAZT_BIN=$(absolute "$FAZT_BIN")
[ -z "${BENCH_BIN_DIR:-}" ] || BENCH_BIN_DIR=$(absolute "$BENCH_BIN_DIR")

cd "$(dirname "$0")/../.."
# The smoke test writes apart, so that a test run never overwrites a real one.
JSON_OUT=${JSON_OUT:-$PWD/target/bench/run$([ -z "$QUICK" ] || echo -quick).json}
started=$(date +%s)

# --quick must never build: the test suite runs it after building the debug
# binaries, and on a 2-core machine a second build would take minutes.
if [ -z "$QUICK" ] && [ -z "${BENCH_NO_BUILD:-}" ]; then
  cargo build --release --locked -p fazt -p fazt-bench >&2
fi
source ops/bench/lib.sh
# lib.sh's default is the release build; this script picks its own.
BIN=${BENCH_BIN_DIR:-$([ -n "$QUICK" ] && echo target/debug || echo target/release)}
FAZT=${FAZT_BIN:-$BIN/fazt}
for exe in "$BIN/loadgen" "$BIN/bare-hyper" "$FAZT"; do
  [ -x "$exe" ] || { echo "missing $exe: build it (cargo build [--release] -p fazt -p fazt-bench) or set BENCH_BIN_DIR / FAZT_BIN" >&2; exit 1; }
done
REPORT=ops/bench/report.py
mkdir -p "$work/results" "$work/mem" "$work/runs"
skips=()   # pairs: scenario.target, why

# --- Peers: installed through the project's own lockfile --------------------
peers=yes
if command -v npm >/dev/null && command -v node >/dev/null; then
  # npm ci empties node_modules and builds better-sqlite3 from source (about
  # two minutes on 2 cores), so it runs only when the lockfile or Node.js
  # changed since the last install; the stamp says which install it was.
  stamp=ops/bench/peers/node_modules/.fazt-installed
  want="$(sha256sum ops/bench/peers/package-lock.json | cut -d' ' -f1) node $(node --version)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "installing the peers (npm ci in ops/bench/peers)" >&2
    # better-sqlite3's prebuilt binaries are downloaded from GitHub, which is
    # out of reach: build from source at once, with node-gyp, against the
    # headers Node ships in /usr/include/node rather than a downloaded copy.
    export npm_config_build_from_source=true
    if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_api.h ]; then
      export npm_config_nodedir=/usr
    fi
    npm ci --prefix ops/bench/peers --no-audit --no-fund --loglevel=error >&2
    echo "$want" > "$stamp"
  fi
  WORKERD=$(ls ops/bench/peers/node_modules/@cloudflare/workerd-*/bin/workerd | head -1)
else
  echo "no Node.js here: the Node and workerd peers are skipped" >&2
  peers=
  for t in js_hello.node js_hello.workerd_x1 js_hello.workerd_x2 static_4k.node kv.node; do
    skips+=("$t" "no Node.js on this machine")
  done
fi

# --- The fazt apps -----------------------------------------------------------
# bench: the JSON hello (api/main.js) and a 4 KiB static file.
mkdir -p "$work/bench/api" "$work/benchkv/api"
printf '({hello: "world"})\n' > "$work/bench/api/main.js"
head -c 4096 /dev/zero | tr '\0' x > "$work/bench/static4k.txt"
# benchkv: one kv read and one kv write per request, among 1000 keys; the
# Node cluster's /kv route does the same against its SQLite file.
cat > "$work/benchkv/api/main.js" <<'JS'
const kv = fazt.app.kv;
const r = "k" + Math.floor(Math.random() * 1000);
const w = "k" + Math.floor(Math.random() * 1000);
const v = kv.get(r);
const n = (v ? v.n : 0) + 1;
kv.set(w, { n });
({ key: w, n })
JS
data="$work/data"
FAZT_LOG=warn "$FAZT" --data-dir "$data" app deploy "$work/bench" >&2
FAZT_LOG=warn "$FAZT" --data-dir "$data" app deploy "$work/benchkv" >&2

# --- Servers -----------------------------------------------------------------
# bare-hyper answers every path with the hello; given a delay and a size it
# answers every path with that many bytes: the 4 KiB baseline.
start bare "$BIN/bare-hyper" 127.0.0.1:0
start bare_4k "$BIN/bare-hyper" 127.0.0.1:0 0 4096
start fazt env FAZT_LOG=warn "$FAZT" --data-dir "$data" supervise --listen 127.0.0.1:0
declare -A pid_of=([bare]=${pids[0]} [bare_4k]=${pids[1]} [fazt]=${pids[2]})
bare=$(address_of bare "listening on ")
bare_4k=$(address_of bare_4k "listening on ")
fazt_addr=$(address_of fazt "fazt ready on http://")
if [ "$(curl -s "http://$bare_4k/static4k" | wc -c)" != 4096 ]; then
  skips+=(static_4k.bare "bare-hyper does not answer with a 4096-byte body")
  bare_4k=
fi

wait_for() { # url
  for _ in $(seq 1 100); do
    curl -sf "$1" >/dev/null && return 0
    sleep 0.1
  done
  echo "nothing answers $1" >&2; return 1
}
if [ -n "$peers" ]; then
  start node node ops/bench/peers/node-cluster.js 127.0.0.1:0 2 "$work/node-kv.db"
  pid_of[node]=${pids[-1]}
  node_addr=$(address_of node "listening on ")
  # Two workerd processes, each on a port of its own (workerd has no
  # shared-port mode): x1 loads the first alone, x2 splits the load.
  read -r wd1 wd2 < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))
for x in s: x.close()')
  start wd1 "$WORKERD" serve ops/bench/peers/workerd.capnp --socket-addr "http=127.0.0.1:$wd1"
  pid_of[workerd_x1]=${pids[-1]}
  start wd2 "$WORKERD" serve ops/bench/peers/workerd.capnp --socket-addr "http=127.0.0.1:$wd2"
  pid_of[workerd_x2]="${pid_of[workerd_x1]} ${pids[-1]}"
  wait_for "http://127.0.0.1:$wd1/"
  wait_for "http://127.0.0.1:$wd2/"
  wait_for "http://$node_addr/kv"
fi
wait_for "http://$fazt_addr/_app/bench/api"

# Idle memory: every server started and answered one probe, none loaded yet.
sleep 1
declare -A idle
for name in "${!pid_of[@]}"; do
  # shellcheck disable=SC2086 # workerd x2 is two PIDs
  idle[$name]=$(python3 "$REPORT" rss ${pid_of[$name]})
done

# --- Load --------------------------------------------------------------------
# The median of RUNS runs of one target, saved as results/SCENARIO.TARGET.
bench() { # scenario.target, url
  local files=() i
  for i in $(seq 1 "$RUNS"); do
    load "$1" "$2" "$CONNECTIONS" > "$work/runs/$1.$i.json"
    files+=("$work/runs/$1.$i.json")
  done
  python3 "$REPORT" median "$work/results/$1.json" "${files[@]}"
}
# workerd's two processes loaded at once, half the connections each.
bench_pair() { # scenario.target, url1, url2
  local files=() i half=$(( CONNECTIONS / 2 > 0 ? CONNECTIONS / 2 : 1 ))
  for i in $(seq 1 "$RUNS"); do
    load "$1" "$2" "$half" > "$work/runs/$1.$i.a.json" &
    local pa=$!
    load "$1" "$3" "$half" > "$work/runs/$1.$i.b.json"
    wait "$pa"
    python3 "$REPORT" pair "$work/runs/$1.$i.a.json" "$work/runs/$1.$i.b.json" > "$work/runs/$1.$i.json"
    files+=("$work/runs/$1.$i.json")
  done
  python3 "$REPORT" median "$work/results/$1.json" "${files[@]}"
}

targets=5
[ -z "$peers" ] || targets=10
echo "machine: $(nproc) cores; $CONNECTIONS connections; ${SECONDS_PER_TARGET}s per run after ${WARMUP}s warm-up; median of $RUNS;" \
  "about $(( targets * RUNS * (WARMUP + SECONDS_PER_TARGET) )) s of load; fazt: $FAZT" >&2
bench js_hello.bare "http://$bare/"
bench js_hello.fazt "http://$fazt_addr/_app/bench/api"
[ -z "$bare_4k" ] || bench static_4k.bare "http://$bare_4k/static4k"
bench static_4k.fazt "http://$fazt_addr/_app/bench/static4k.txt"
bench kv.fazt "http://$fazt_addr/_app/benchkv/api"
if [ -n "$peers" ]; then
  bench js_hello.node "http://$node_addr/"
  bench js_hello.workerd_x1 "http://127.0.0.1:$wd1/"
  bench_pair js_hello.workerd_x2 "http://127.0.0.1:$wd1/" "http://127.0.0.1:$wd2/"
  bench static_4k.node "http://$node_addr/static4k"
  bench kv.node "http://$node_addr/kv"
fi

# Memory after load: each server has served all of its scenarios.
for name in "${!pid_of[@]}"; do
  # shellcheck disable=SC2086
  printf '{"idle": %s, "after_load": %s}\n' "${idle[$name]}" "$(python3 "$REPORT" rss ${pid_of[$name]})" \
    > "$work/mem/$name.json"
done

# --- Report ------------------------------------------------------------------
python3 - "$work" "$FAZT" "${FAZT_BIN:+1}" "$BIN" "${QUICK:+quick}" "$SECONDS_PER_TARGET" "$WARMUP" \
  "$CONNECTIONS" "$RUNS" "${WORKERD:-}" "$(( $(date +%s) - started ))" "${skips[@]}" <<'PY'
import hashlib, json, os, platform, subprocess, sys
work, fazt, from_env, bin_dir, quick, secs, warmup, conns, runs, workerd, elapsed = sys.argv[1:12]
skips = sys.argv[12:]
def version(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return None
meta = {
    "machine": {"cores": os.cpu_count(), "kernel": platform.release(),
                "node": version("node", "--version"),
                "workerd": version(workerd, "--version") if workerd else None},
    "settings": {"mode": quick or "full", "seconds": int(secs), "warmup": int(warmup),
                 "connections": int(conns), "runs": int(runs), "bin_dir": bin_dir,
                 "elapsed_s_before_report": int(elapsed)},
    "fazt": {"path": os.path.abspath(fazt), "from_env": bool(from_env),
             "version": version(fazt, "--version"),
             "sha256": hashlib.sha256(open(fazt, "rb").read()).hexdigest()},
}
json.dump(meta, open(os.path.join(work, "meta.json"), "w"))
json.dump(dict(zip(skips[0::2], skips[1::2])), open(os.path.join(work, "skipped.json"), "w"))
PY
python3 "$REPORT" report "$work" "$JSON_OUT"
# The smoke test's verdict; a full run only warns (under real load a
# server may shed requests, and that is a result, not a broken script).
python3 "$REPORT" check "$JSON_OUT" || [ -z "$QUICK" ]

# Shared by the benchmark scripts: a work dir removed on exit, servers
# started in the calling shell (so their pids reach the cleanup list) and
# stopped by pid, and a bounded wait for a server's address line.
BIN=target/release
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

start() { # name, command...
  local name=$1; shift
  "$@" > "$work/$name.out" 2> "$work/$name.err" &
  pids+=($!)
}

address_of() { # name, ready-prefix
  local name=$1 prefix=$2 addr
  for _ in $(seq 1 600); do
    addr=$(sed -n "s|^$prefix||p" "$work/$name.out" | head -1)
    if [ -n "$addr" ]; then echo "$addr"; return 0; fi
    sleep 0.1
  done
  echo "$name did not start; stderr:" >&2; cat "$work/$name.err" >&2; return 1
}

# fazt's CLI against $data, quietly.
fazt() { FAZT_LOG=error "$BIN/fazt" --data-dir "$data" "$@" >&2; }

# Deploys app NAME whose api/main.js is MAIN_JS.
app() { # name, main.js
  mkdir -p "$work/$1/api"
  printf '%s\n' "$2" > "$work/$1/api/main.js"
  fazt app deploy "$work/$1"
}

# Runs the load generator for $SECONDS_PER_TARGET s after ${WARMUP:-2} s of
# warm-up; prints its JSON (and a labelled copy on stderr).
load() { # label, url, connections
  local out
  out=$("$BIN/loadgen" "$2" --connections "$3" --seconds "$SECONDS_PER_TARGET" --warmup "${WARMUP:-2}")
  echo "$1 $out" >&2
  echo "$out"
}

# Stops the server started last.
stop_last() { local pid=${pids[-1]}; kill "$pid"; wait "$pid" 2>/dev/null || true; }

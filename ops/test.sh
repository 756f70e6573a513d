#!/usr/bin/env bash
# Runs every test of fazt: unit tests of each crate and the black-box tests
# in tests/ that start the real binary. This is the README's test command;
# .ci/run calls it after the format and lint checks.
set -euo pipefail
cd "$(dirname "$0")/.."
# The SSRF and browser tests run fazt in a private network namespace (only
# loopback): they need unshare (util-linux) and ip (iproute2), as root. The
# browser tests drive Debian's Chromium through its ChromeDriver.
updated=
for need in unshare:util-linux ip:iproute2 chromium:chromium chromedriver:chromium-driver; do
  if ! command -v "${need%%:*}" >/dev/null; then
    echo "installing ${need##*:} for the tests" >&2
    [ -n "$updated" ] || { apt-get update -qq; updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need##*:}" >/dev/null
  fi
done
cargo test --workspace --locked "$@"
# The benchmark must not rot: its smoke test runs every scenario for a few
# seconds against the debug binaries. cargo test builds no binary of
# fazt-bench (it has no integration test), so build the two it drives.
cargo build --locked -p fazt-bench --bin loadgen --bin bare-hyper
bash ops/bench/run.sh --quick
# The README's run command must keep resolving to the fazt binary.
version=$(cargo run --quiet --locked -- --version)
[[ "$version" == fazt\ * ]] || { echo "cargo run does not run fazt (got: $version)" >&2; exit 1; }

#!/usr/bin/env bash
# Runs every test of fazt: unit tests of each crate and the black-box tests
# in tests/ that start the real binary. This is the README's test command;
# .ci/run calls it after the format and lint checks.
set -euo pipefail
cd "$(dirname "$0")/.."
# The SSRF tests run fazt in a private network namespace (only loopback):
# they need unshare (util-linux) and ip (iproute2), as root.
for need in unshare:util-linux ip:iproute2; do
  if ! command -v "${need%%:*}" >/dev/null; then
    echo "installing ${need##*:} for the network-namespace tests" >&2
    apt-get update -qq && apt-get install -y -qq "${need##*:}" >/dev/null
  fi
done
cargo test --workspace --locked "$@"
# The README's run command must keep resolving to the fazt binary.
version=$(cargo run --quiet --locked -- --version)
[[ "$version" == fazt\ * ]] || { echo "cargo run does not run fazt (got: $version)" >&2; exit 1; }

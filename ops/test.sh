#!/usr/bin/env bash
# Runs every test of fazt: unit tests of each crate and the black-box tests
# in tests/ that start the real binary. This is the README's test command;
# .ci/run calls it after the format and lint checks.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
# The README's run command must keep resolving to the fazt binary.
version=$(cargo run --quiet --locked -- --version)
[[ "$version" == fazt\ * ]] || { echo "cargo run does not run fazt (got: $version)" >&2; exit 1; }

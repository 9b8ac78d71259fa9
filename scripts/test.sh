#!/usr/bin/env bash
# Runs every test suite of the project: the Rust workspace (core, hub, bench), then the Kotlin
# (JVM) and Python bindings against a real hub, with the Swift bindings generated and checked.
# Set-up (system packages, kotlinc, JNA, a pytest venv) is done first when missing.
# VIGIE_CRASH_CYCLES raises the number of kill -9 cycles of the crash test (default 100);
# VIGIE_FUZZ_ITERATIONS the number of hostile inputs of the fuzz test (default 100,000).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
scripts/setup.sh

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

echo "== Rust: every workspace crate's unit and integration tests" >&2
cargo test --workspace --locked 2>&1 | tee "$logs/rust.log"
scripts/test-bindings.sh 2>&1 | tee "$logs/bindings.log"

# One closing line for every suite together (each runner printed its own above).
passed=$(
  {
    sed -nE 's/^test result: [a-zA-Z]+\. ([0-9]+) passed.*/\1/p' "$logs/rust.log"
    sed -nE 's/^OK \(([0-9]+) tests?\)$/\1/p' "$logs/bindings.log"
    sed -nE 's/^=+ ([0-9]+) passed.*/\1/p' "$logs/bindings.log"
  } | awk '{ n += $1 } END { print n + 0 }'
)
echo "all suites: $passed passed, 0 failed"

#!/usr/bin/env bash
# Runs every test suite of the project. Set-up (system packages) is done first when missing.
# VIGIE_CRASH_CYCLES raises the number of kill -9 cycles of the crash test (default 100).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
scripts/setup.sh

echo "== Rust: every workspace crate's unit and integration tests" >&2
cargo test --workspace --locked
scripts/test-bindings.sh   # Kotlin (JVM) and Python suites against a real hub; Swift bindings checked

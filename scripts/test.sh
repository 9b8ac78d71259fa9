#!/usr/bin/env bash
# Runs every test suite of the project: the Rust workspace (core, hub, bench), then the Kotlin
# (JVM) and Python bindings against a real hub, with the Swift bindings generated and checked,
# then the console in a real browser (scripts/test-browser.sh: headless Chromium).
# Set-up (system packages, kotlinc, JNA, a pytest venv) is done first when missing.
# VIGIE_CRASH_CYCLES raises the number of kill -9 cycles of the crash test (default 100);
# VIGIE_FUZZ_ITERATIONS the number of hostile inputs of the fuzz test (default 100,000).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
scripts/setup.sh

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

export VIGIE_TEST_LOG_DIR="$logs/hubs"
# The hub tests on PostgreSQL make a database each: earlier runs' are dropped first.
scripts/postgres.sh clean

echo "== Rust: every workspace crate's unit and integration tests (hub on its embedded store)" >&2
cargo test --workspace --locked 2>&1 | tee "$logs/rust.log"
echo "== The hub suite again, on PostgreSQL (scripts/postgres.sh starts a private server)" >&2
# `--workspace` as above (the same features): the test binaries built for the first pass run
# again, instead of a build of the hub with the features of `-p vigie-server` alone.
VIGIE_TEST_BACKEND=postgres cargo test --workspace --locked \
  --test hub_sync --test hub_security --test hub_crash --test hub_protection \
  --test hub_lifecycle --test hub_rules --test hub_rules_matrix \
  --test hub_surface --test hub_surface_admin --test hub_surface_logs --test hub_encryption \
  --test hub_identity --test hub_attachments --test console 2>&1 | tee "$logs/postgres.log"
scripts/test-bindings.sh 2>&1 | tee "$logs/bindings.log"
VIGIE_BROWSER_OUT="$CARGO_TARGET_DIR/browser-artifacts" scripts/test-browser.sh 2>&1 | tee "$logs/browser.log"

echo "== Logs: no personal data in what the suites and the hubs logged" >&2
hub_logs=$(find "$logs/hubs" -name '*.hub.log' 2>/dev/null | wc -l)
leaks=0
while IFS= read -r name; do
  case "$name" in ''|'#'*) continue ;; esac
  if grep -rlF -- "$name" "$logs" >/dev/null; then
    echo "personal data in the logs: a name from tests/personal-names.txt appears in:" >&2
    grep -rlF -- "$name" "$logs" >&2
    leaks=$((leaks + 1))
  fi
done < tests/personal-names.txt
if [ "$leaks" -ne 0 ] || [ "$hub_logs" -eq 0 ]; then
  echo "log scan failed ($leaks names found, $hub_logs hub logs scanned)" >&2
  exit 1
fi
echo "log scan: $(grep -cv '^#' tests/personal-names.txt) names, none found in the test output or $hub_logs hub logs" >&2

# One closing line for every suite together (each runner printed its own above).
passed=$(
  {
    sed -nE 's/^test result: [a-zA-Z]+\. ([0-9]+) passed.*/\1/p' "$logs/rust.log" "$logs/postgres.log"
    sed -nE 's/^OK \(([0-9]+) tests?\)$/\1/p' "$logs/bindings.log"
    sed -nE 's/^=+ ([0-9]+) passed.*/\1/p' "$logs/bindings.log"
    sed -nE 's/^ℹ pass ([0-9]+)$/\1/p' "$logs/browser.log"
  } | awk '{ n += $1 } END { print n + 0 }'
)
echo "all suites: $passed passed, 0 failed"

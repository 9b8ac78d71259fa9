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

echo "== Rust: every workspace crate's tests (hub on its embedded store), and the hub suites" \
  "again on PostgreSQL (scripts/postgres.sh starts a private server)" >&2
# Test binaries run several at a time (scripts/run-rust-tests.py); the PostgreSQL pass runs the
# same binaries, built once with the workspace's features, with VIGIE_TEST_BACKEND=postgres.
started=$SECONDS
scripts/run-rust-tests.py --postgres \
hub_sync,hub_security,hub_crash,hub_protection,hub_lifecycle,hub_rules,hub_rules_matrix,\
hub_surface,hub_surface_admin,hub_surface_logs,hub_encryption,hub_identity,hub_attachments,console \
  2>&1 | tee "$logs/rust.log"
echo "== Rust suites in $((SECONDS - started)) s" >&2
started=$SECONDS
scripts/test-bindings.sh 2>&1 | tee "$logs/bindings.log"
echo "== bindings suites in $((SECONDS - started)) s" >&2
started=$SECONDS
VIGIE_BROWSER_OUT="$CARGO_TARGET_DIR/browser-artifacts" scripts/test-browser.sh 2>&1 | tee "$logs/browser.log"
echo "== browser suite in $((SECONDS - started)) s" >&2

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
    sed -nE 's/^test result: [a-zA-Z]+\. ([0-9]+) passed.*/\1/p' "$logs/rust.log"
    sed -nE 's/^OK \(([0-9]+) tests?\)$/\1/p' "$logs/bindings.log"
    sed -nE 's/^=+ ([0-9]+) passed.*/\1/p' "$logs/bindings.log"
    sed -nE 's/^ℹ pass ([0-9]+)$/\1/p' "$logs/browser.log"
  } | awk '{ n += $1 } END { print n + 0 }'
)
echo "all suites: $passed passed, 0 failed"

#!/usr/bin/env bash
# Runs every test suite of the project, several at a time: the Rust workspace (core, hub, bench),
# the Kotlin (JVM) and Python bindings against a real hub, with the Swift bindings generated and
# checked, and the console in a real browser (scripts/test-browser.sh: headless Chromium).
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
export VIGIE_BROWSER_OUT="$CARGO_TARGET_DIR/browser-artifacts"
# The hub tests on PostgreSQL make a database each: earlier runs' are dropped first.
scripts/postgres.sh clean
# Every suite's tools, one installer after another (apt takes a lock): the suites then run
# beside one another.
scripts/test-bindings.sh --tools-only
scripts/test-browser.sh --tools-only

echo "== Every suite: the workspace crates' tests (the hub on its embedded store), the hub" \
  "suites again on PostgreSQL (scripts/postgres.sh starts a private server), the bindings'" \
  "suites and the browser's" >&2
# Test binaries and suites run several at a time (scripts/run-tests.py); the PostgreSQL pass
# runs the same binaries, built once with the workspace's features, with
# VIGIE_TEST_BACKEND=postgres. Each suite's output is printed whole when it ends.
started=$SECONDS
scripts/run-tests.py --postgres \
hub_sync,hub_security,hub_crash,hub_protection,hub_lifecycle,hub_rules,hub_rules_matrix,\
hub_surface,hub_surface_admin,hub_surface_logs,hub_encryption,hub_operation,hub_identity,hub_attachments,console \
  --suite "bindings=scripts/test-bindings.sh" --suite "browser=scripts/test-browser.sh" \
  2>&1 | tee "$logs/suites.log"
echo "== every suite in $((SECONDS - started)) s" >&2

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
    sed -nE 's/^test result: [a-zA-Z]+\. ([0-9]+) passed.*/\1/p' "$logs/suites.log"
    sed -nE 's/^OK \(([0-9]+) tests?\)$/\1/p' "$logs/suites.log"
    sed -nE 's/^=+ ([0-9]+) passed.*/\1/p' "$logs/suites.log"
    sed -nE 's/^ℹ pass ([0-9]+)$/\1/p' "$logs/suites.log"
  } | awk '{ n += $1 } END { print n + 0 }'
)
echo "all suites: $passed passed, 0 failed"

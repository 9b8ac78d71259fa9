#!/usr/bin/env bash
# The console's tests in a real browser: installs Debian's Chromium and Node.js when missing and
# the npm packages of tests/browser (playwright-core, jsqr; pinned by package-lock.json), builds
# the hub and its demo driver (with the workspace's tests), and runs tests/browser/console.test.mjs (node's test runner).
# Screenshots are kept in $VIGIE_BROWSER_OUT (default target/browser-artifacts under the build
# directory); the hub's log goes to $VIGIE_TEST_LOG_DIR when set (scripts/test.sh scans it).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
scripts/setup.sh

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test-browser: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# The packages as the lockfile pins them; never a browser download of Playwright's own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# Again only when the lockfile changed since (npm writes node_modules/.package-lock.json).
if ! [ tests/browser/node_modules/.package-lock.json -nt tests/browser/package-lock.json ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
# `--tools-only`: as scripts/test-bindings.sh.
if [ "${1:-}" = "--tools-only" ]; then
  exit 0
fi

# The hub and the demo driver, from the test scripts' shared build (one that builds them alone
# would compile the core and the hub again; see scripts/build-workspace.sh).
scripts/build-workspace.sh -q
export VIGIE_BIN="$CARGO_TARGET_DIR/debug/vigie"
export VIGIE_BENCH_BIN="$CARGO_TARGET_DIR/debug/vigie-bench"
export VIGIE_BROWSER_OUT="${VIGIE_BROWSER_OUT:-$CARGO_TARGET_DIR/browser-artifacts}"
export CHROMIUM="${CHROMIUM:-$(command -v chromium)}"
echo "== Browser: the console in headless Chromium (screenshots in $VIGIE_BROWSER_OUT)" >&2
cd tests/browser
node --test --test-concurrency=1 --test-reporter=spec console.test.mjs

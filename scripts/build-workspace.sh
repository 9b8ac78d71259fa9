#!/usr/bin/env bash
# The one debug build the test scripts share: every library, binary, test and example of the
# workspace, the bindings' library with its test hooks (hidden functions the Kotlin and Python
# suites call; never in a release). Every test script builds with these flags and nothing else:
# a build with other features, or of fewer packages (`cargo build -p …`), resolves the
# dependencies' features differently and compiles the core and the hub again (a minute or two
# each time the core changes). After the first, each call takes a second.
#
#   scripts/build-workspace.sh [CARGO BUILD ARGS…]
#   scripts/build-workspace.sh --doc-tests     the doc tests, on the same build
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
shared=(--workspace --locked --features vigie-bindings/test-hooks)
if [ "${1:-}" = "--doc-tests" ]; then
  shift
  exec cargo test "${shared[@]}" --doc "$@"
fi
exec cargo build "${shared[@]}" --lib --bins --tests --examples "$@"

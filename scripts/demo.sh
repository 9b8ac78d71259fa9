#!/usr/bin/env bash
# The main job on the embedded default: for now, the core benchmark at a small scale, which
# records a district's season into an encrypted SQLite store and queries it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
scripts/setup.sh
cargo run --release --locked -p vigie-bench -- core --scale "${VIGIE_SCALE:-0.1}"

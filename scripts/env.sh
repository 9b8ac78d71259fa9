# Shared settings for the project's scripts (sourced, not run).
# Builds go to a cache outside the clone so that a fresh checkout (CI) reuses earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigie/target}"
export VIGIE_TOOLS="${VIGIE_TOOLS:-$HOME/.cache/vigie/tools}"
mkdir -p "$CARGO_TARGET_DIR" "$VIGIE_TOOLS"

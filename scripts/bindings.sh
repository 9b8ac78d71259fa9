#!/usr/bin/env bash
# Generates Vigie's Kotlin, Python and Swift bindings from a built library, with the workspace's
# own uniffi-bindgen (the same uniffi version as the library).
#
#   scripts/bindings.sh [options] OUT_DIR
#
#   --features LIST    cargo features of vigie-bindings for the host build (e.g. test-hooks)
#   --release          build the host library in release mode
#   --library PATH     generate from this library instead of building the host one (e.g. an
#                      Android libvigie.so from cargo-ndk, or an iOS libvigie.a)
#   --android          Kotlin for Android (uses Android's SystemCleaner; needs androidx.annotation)
#   --languages LIST   comma-separated subset of kotlin,python,swift (default: all three)
#
# The library holds two uniffi crates: vigie-core (the records, enums, queries and summaries) and
# vigie-bindings (the objects and calls). Each has its generated file:
#   OUT_DIR/lib/libvigie.so          the host library, when built here
#   OUT_DIR/kotlin/org/vigie/vigie.kt and OUT_DIR/kotlin/org/vigie/core/vigie_core.kt
#   OUT_DIR/swift/{Vigie.swift,VigieCore.swift}  one Swift module, and its C module VigieFFI:
#                  {VigieFFI.h,VigieCoreFFI.h,VigieFFI.modulemap}
#   OUT_DIR/python/vigie/            the Python package: our layer from bindings/python/vigie,
#                  the generated modules and the host library in vigie/_ffi/
# and checks the C headers with the C compiler. Prints OUT_DIR's path on success.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

features="" profile="debug" library="" android=0 languages="kotlin,python,swift" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --features) features="$2"; shift 2 ;;
    --release) profile="release"; shift ;;
    --library) library="$2"; shift 2 ;;
    --android) android=1; shift ;;
    --languages) languages="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "bindings: unknown option $1" >&2; exit 2 ;;
    *) out="$1"; shift ;;
  esac
done
[ -n "$out" ] || { echo "bindings: OUT_DIR is required (see --help)" >&2; exit 2; }
mkdir -p "$out"
out="$(cd "$out" && pwd)"

if [ -z "$library" ]; then
  args=(-p vigie-bindings --locked)
  [ -n "$features" ] && args+=(--features "$features")
  [ "$profile" = release ] && args+=(--release)
  echo "bindings: cargo build ${args[*]}" >&2
  cargo build "${args[@]}"
  # A copy: another build in the same target directory (other features) may replace the file.
  mkdir -p "$out/lib"
  cp -f "$CARGO_TARGET_DIR/$profile/libvigie.so" "$out/lib/libvigie.so"
  library="$out/lib/libvigie.so"
fi
[ -f "$library" ] || { echo "bindings: no library at $library" >&2; exit 1; }

# A separate cargo command: building it together with vigie-bindings would unify uniffi's
# features and rebuild the library (see ../shared/README.md). VIGIE_UNIFFI_BINDGEN names one
# built already: scripts/test-bindings.sh takes the workspace build's, whose dependencies the
# test build compiled (a build of this package alone compiles many of them again, minutes on a
# cold cache).
bindgen="${VIGIE_UNIFFI_BINDGEN:-}"
if [ -z "$bindgen" ]; then
  cargo build -p uniffi-bindgen --locked -q
  bindgen="$CARGO_TARGET_DIR/debug/uniffi-bindgen"
fi
[ -x "$bindgen" ] || { echo "bindings: no uniffi-bindgen at $bindgen" >&2; exit 1; }

generate() { # language out-dir [extra args]
  local language="$1" dir="$2"; shift 2
  rm -rf "$dir"; mkdir -p "$dir"
  "$bindgen" generate --library "$library" --language "$language" --out-dir "$dir" --no-format "$@" >/dev/null
}

# Swift names a crate's file after its Swift module, the same for both crates (core/uniffi.toml):
# each crate is generated on its own, the core's file renamed.
swift_module_map='module VigieFFI {
    header "VigieFFI.h"
    header "VigieCoreFFI.h"
    export *
}'

IFS=, read -r -a wanted <<<"$languages"
for language in "${wanted[@]}"; do
  case "$language" in
    kotlin)
      if [ "$android" = 1 ]; then
        generate kotlin "$out/kotlin" --config bindings/uniffi-android.toml
        # uniffi ignores a --config file it does not understand (with a mere warning). Only
        # objects need a cleaner: the core's file (records and enums) names no Android API.
        grep -q '^import android.os.Build' "$out/kotlin/org/vigie/vigie.kt" ||
          { echo "bindings: the Android settings (bindings/uniffi-android.toml) were not applied" >&2; exit 1; }
      else
        generate kotlin "$out/kotlin"
      fi
      ;;
    swift)
      generate swift "$out/swift-core" --crate vigie_core
      generate swift "$out/swift" --crate vigie
      mv "$out/swift-core/Vigie.swift" "$out/swift/VigieCore.swift"
      mv "$out/swift-core/VigieCoreFFI.h" "$out/swift/"
      rm -rf "$out/swift-core"
      printf '%s\n' "$swift_module_map" >"$out/swift/VigieFFI.modulemap"
      # The headers must be valid C for the XCFramework's module: compile a file that includes
      # both. clang knows the nullability qualifiers; gcc (on Linux) is told to ignore them.
      cc="${CC:-cc}"
      nullability=() # (expanded so that bash 3.2, macOS's, accepts it empty under set -u)
      "$cc" --version 2>/dev/null | grep -qi clang || nullability=(-D_Nullable= -D_Nonnull=)
      printf '#include "VigieFFI.h"\n#include "VigieCoreFFI.h"\n' |
        "$cc" -fsyntax-only -std=c11 -Wall -Werror ${nullability[@]+"${nullability[@]}"} -I "$out/swift" -x c -
      ;;
    python)
      generate python "$out/python-generated"
      package="$out/python/vigie"
      rm -rf "$out/python"; mkdir -p "$package/_ffi"
      cp bindings/python/vigie/*.py "$package/"
      cp "$out/python-generated/vigie.py" "$out/python-generated/vigie_core.py" "$package/_ffi/"
      printf 'from .vigie_core import *  # noqa: F401,F403\nfrom .vigie import *  # noqa: F401,F403\n' \
        >"$package/_ffi/__init__.py"
      # The generated module loads the library from its own directory.
      ln -f "$library" "$package/_ffi/" 2>/dev/null || cp -f "$library" "$package/_ffi/"
      rm -rf "$out/python-generated"
      ;;
    *) echo "bindings: unknown language $language" >&2; exit 2 ;;
  esac
done
echo "$out"

#!/usr/bin/env bash
# Builds ios/VigieFFI.xcframework (libvigie.a for iOS devices, the iOS simulators and macOS, with
# the C headers and module map) and writes ios/Sources/Vigie/{Vigie,VigieCore}.swift (the
# generated bindings: the calls, and the core's records, enums, queries and summaries).
# Runs on a Mac with Xcode and the Rust targets:
#   rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios \
#                     aarch64-apple-darwin x86_64-apple-darwin
# SQLCipher's OpenSSL is compiled from source for each target (feature vendored-openssl).
#
#   ios/scripts/build-ios.sh [--debug] [--test-hooks]
#
# --test-hooks adds the hidden test functions (debugPanic) that the Swift tests call: use it for
# `swift test`, never for an app.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh

profile=release
features=vendored-openssl
for arg in "$@"; do
  case "$arg" in
    --debug) profile=debug ;;
    --test-hooks) features="$features,test-hooks" ;;
    *) echo "build-ios: unknown option $arg" >&2; exit 2 ;;
  esac
done
[ "$(uname -s)" = Darwin ] || { echo "build-ios: needs macOS with Xcode" >&2; exit 1; }
command -v xcodebuild >/dev/null || { echo "build-ios: xcodebuild is missing (install Xcode)" >&2; exit 1; }

export IPHONEOS_DEPLOYMENT_TARGET=15.0 MACOSX_DEPLOYMENT_TARGET=12.0
targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin)
for target in "${targets[@]}"; do
  args=(-p vigie-bindings --locked --lib --target "$target" --features "$features")
  [ "$profile" = release ] && args+=(--release)
  echo "build-ios: cargo build ${args[*]}" >&2
  cargo build "${args[@]}"
done
lib() { echo "$CARGO_TARGET_DIR/$1/$profile/libvigie.a"; }

out=ios/build
rm -rf "$out"
mkdir -p "$out/ios-simulator" "$out/macos" "$out/headers"
lipo -create "$(lib aarch64-apple-ios-sim)" "$(lib x86_64-apple-ios)" -output "$out/ios-simulator/libvigie.a"
lipo -create "$(lib aarch64-apple-darwin)" "$(lib x86_64-apple-darwin)" -output "$out/macos/libvigie.a"

# The bindings come from the library's uniffi metadata: the macOS dylib built alongside.
scripts/bindings.sh --library "$CARGO_TARGET_DIR/aarch64-apple-darwin/$profile/libvigie.dylib" \
  --languages swift "$out/bindings" >/dev/null
cp "$out/bindings/swift/VigieFFI.h" "$out/bindings/swift/VigieCoreFFI.h" "$out/headers/"
# Inside an XCFramework the module map must be called module.modulemap.
cp "$out/bindings/swift/VigieFFI.modulemap" "$out/headers/module.modulemap"
cp "$out/bindings/swift/Vigie.swift" "$out/bindings/swift/VigieCore.swift" ios/Sources/Vigie/

rm -rf ios/VigieFFI.xcframework
xcodebuild -create-xcframework \
  -library "$(lib aarch64-apple-ios)" -headers "$out/headers" \
  -library "$out/ios-simulator/libvigie.a" -headers "$out/headers" \
  -library "$out/macos/libvigie.a" -headers "$out/headers" \
  -output ios/VigieFFI.xcframework
echo "build-ios: ios/VigieFFI.xcframework and ios/Sources/Vigie/{Vigie,VigieCore}.swift ($profile, features $features)" >&2

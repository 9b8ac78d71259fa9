#!/usr/bin/env bash
# Builds libvigie.so for Android (arm64-v8a, armeabi-v7a, x86_64) into android/src/main/jniLibs
# and generates the Kotlin bindings into android/generated/kotlin.
#
# Needs: the Android NDK (ANDROID_NDK_HOME, or ANDROID_HOME/ndk/<version>), cargo-ndk
# (`cargo install cargo-ndk`), and the Rust targets:
#   rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android
# SQLCipher's OpenSSL is compiled from source for each ABI (feature vendored-openssl): the first
# build takes a while.
#
#   android/scripts/build-android.sh [--debug]
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh

profile=release
[ "${1:-}" = "--debug" ] && profile=debug
command -v cargo-ndk >/dev/null || { echo "build-android: cargo-ndk is missing (cargo install cargo-ndk)" >&2; exit 1; }
if [ -z "${ANDROID_NDK_HOME:-}" ] && [ -n "${ANDROID_HOME:-}" ] && [ -d "$ANDROID_HOME/ndk" ]; then
  ANDROID_NDK_HOME="$ANDROID_HOME/ndk/$(ls "$ANDROID_HOME/ndk" | sort -V | tail -n1)"
  export ANDROID_NDK_HOME
fi
[ -n "${ANDROID_NDK_HOME:-}" ] || { echo "build-android: set ANDROID_NDK_HOME (or ANDROID_HOME with an ndk/)" >&2; exit 1; }

jni=android/src/main/jniLibs
rm -rf "$jni"
args=(-t arm64-v8a -t armeabi-v7a -t x86_64 --platform 24 -o "$jni" build -p vigie-bindings --locked
      --features vendored-openssl)
[ "$profile" = release ] && args+=(--release)
# 16 KB pages (required by Google Play for new apps on Android 15+).
RUSTFLAGS="${RUSTFLAGS:-} -C link-arg=-Wl,-z,max-page-size=16384" cargo ndk "${args[@]}"
for abi in arm64-v8a armeabi-v7a x86_64; do
  [ -f "$jni/$abi/libvigie.so" ] || { echo "build-android: $jni/$abi/libvigie.so was not built" >&2; exit 1; }
done

# The bindings come from the library itself (its uniffi metadata): any ABI's will do, taken
# from cargo's output (the copies in jniLibs may be stripped).
scripts/bindings.sh --library "$CARGO_TARGET_DIR/aarch64-linux-android/$profile/libvigie.so" \
  --android --languages kotlin android/generated >/dev/null
echo "build-android: $jni/{arm64-v8a,armeabi-v7a,x86_64}/libvigie.so and android/generated/kotlin" >&2

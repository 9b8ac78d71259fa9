#!/usr/bin/env bash
# Runs the bindings' test suites on this machine: Kotlin (the generated bindings plus android/'s
# Kotlin, compiled with kotlinc and run with JUnit on the JVM) and Python (pytest), both against
# the host library built with the `test-hooks` feature and a real hub on 127.0.0.1, plus the
# README's quick starts. Swift cannot be compiled here: its bindings are generated and their C
# header checked.
#
# Installs when missing, and caches under $VIGIE_TOOLS (default ~/.cache/vigie/tools):
# kotlinc (npm package kotlin-compiler), JNA, JUnit 4 and Hamcrest (Debian packages), a Python
# venv with pytest. Non-interactive; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
export CI="${CI:-true}"

scripts/setup.sh # the Rust build's own system packages, when run on its own

KOTLIN_VERSION=2.4.20
PYTEST_VERSION=8.3.5
begin=$SECONDS
log() { echo "== bindings [$((SECONDS - begin))s]: $*" >&2; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# ---------------------------------------------------------------------------------------------
# Tools

apt_install() { # packages...
  log "installing Debian packages: $*"
  $SUDO apt-get update -qq </dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" \
    </dev/null >/dev/null
}

missing=()
for pkg in libjna-java junit4 libhamcrest-java; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
command -v java >/dev/null || missing+=(default-jre-headless)
command -v npm >/dev/null || [ -x "$VIGIE_TOOLS/kotlinc-$KOTLIN_VERSION/bin/kotlinc" ] || missing+=(npm)
command -v cc >/dev/null || missing+=(gcc)
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

KOTLIN_HOME="$VIGIE_TOOLS/kotlinc-$KOTLIN_VERSION"
if [ ! -x "$KOTLIN_HOME/bin/kotlinc" ]; then
  log "fetching kotlinc $KOTLIN_VERSION (npm package kotlin-compiler, ~94 MB, once)"
  staging="$(mktemp -d "$VIGIE_TOOLS/kotlinc.XXXXXX")"
  (cd "$staging" && npm pack --silent "kotlin-compiler@$KOTLIN_VERSION" >/dev/null </dev/null)
  tar -xzf "$staging"/kotlin-compiler-*.tgz -C "$staging"
  chmod +x "$staging"/package/bin/*
  rm -rf "$KOTLIN_HOME"
  mv "$staging/package" "$KOTLIN_HOME"
  rm -rf "$staging"
fi
[ -x "$KOTLIN_HOME/bin/kotlinc" ] || { echo "bindings: kotlinc missing from $KOTLIN_HOME" >&2; exit 1; }

VENV="$VIGIE_TOOLS/venv-pytest-$PYTEST_VERSION"
if [ ! -x "$VENV/bin/pytest" ]; then
  log "creating a Python venv with pytest $PYTEST_VERSION (once)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "pytest==$PYTEST_VERSION" </dev/null
fi
# `--tools-only`: scripts/test.sh installs every suite's tools first, one installer at a time
# (apt takes a lock), and then runs the suites beside one another.
if [ "${1:-}" = "--tools-only" ]; then
  exit 0
fi

jar() { # name: the first of /usr/share/java/<name>.jar or $KOTLIN_HOME/lib/<name>.jar
  local f
  for f in "/usr/share/java/$1.jar" "$KOTLIN_HOME/lib/$1.jar"; do
    [ -f "$f" ] && { echo "$f"; return; }
  done
  echo "bindings: no $1.jar" >&2; return 1
}
JARS="$(jar kotlin-stdlib):$(jar jna):$(jar junit4):$(jar hamcrest-core || jar hamcrest)"
JARS="$JARS:$(jar kotlin-test):$(jar kotlin-test-junit):$(jar kotlinx-coroutines-core-jvm)"

# ---------------------------------------------------------------------------------------------
# The library (with test hooks), its bindings, and the hub binary

work="$CARGO_TARGET_DIR/bindings-test"
mkdir -p "$work"
log "building the hub, uniffi-bindgen and libvigie (with its test hooks)"
# The build scripts/run-tests.py made (scripts/build-workspace.sh): after it, this takes
# a second. A build of the library or of uniffi-bindgen alone would compile the core, or many
# of uniffi's dependencies, a second time.
scripts/build-workspace.sh -q
VIGIE="$CARGO_TARGET_DIR/debug/vigie"
# Every scripts/bindings.sh call below generates with this one.
export VIGIE_UNIFFI_BINDGEN="$CARGO_TARGET_DIR/debug/uniffi-bindgen"
log "generating Kotlin, Python and Swift"
# A copy: a later build in the same target directory (other features) may replace the file.
LIB_DIR="$work/generated/lib"
mkdir -p "$LIB_DIR"
cp -f "$CARGO_TARGET_DIR/debug/libvigie.so" "$LIB_DIR/libvigie.so"
scripts/bindings.sh --library "$LIB_DIR/libvigie.so" "$work/generated" >/dev/null

# ---------------------------------------------------------------------------------------------
# A real hub on 127.0.0.1, one per suite so that suites do not see each other's records

hub_pids=()
cleanup() {
  local pid
  for pid in "${hub_pids[@]}"; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

start_hub() { # data-dir: exports VIGIE_HUB_URL and the tokens for the tests
  local data="$1" monitor supervisor revoked line i
  # A new hub, with a key of its own: the last run's key directory holds its journal.
  rm -rf "$data" "$data-key"; mkdir -p "$data"
  # The sample area tree: a hub serves a country's records once its tree is published.
  "$VIGIE" reference publish --data "$data" reference/areas-CI.json >>"$data/admin.log"
  monitor="$("$VIGIE" user add --data "$data" --name "Awa Koné" --role community-monitor \
    --area CI-R1-D1-C01 2>>"$data/admin.log")"
  supervisor="$("$VIGIE" user add --data "$data" --name "Issa Traoré" --role supervisor \
    --area CI-R1 2>>"$data/admin.log")"
  VIGIE_MONITOR_TOKEN="$("$VIGIE" device enrol --data "$data" --user "$monitor" 2>>"$data/admin.log")"
  VIGIE_QUICKSTART_TOKEN="$("$VIGIE" device enrol --data "$data" --user "$monitor" 2>>"$data/admin.log")"
  VIGIE_SUPERVISOR_TOKEN="$("$VIGIE" device enrol --data "$data" --user "$supervisor" 2>>"$data/admin.log")"
  VIGIE_REVOKED_TOKEN="$("$VIGIE" device enrol --data "$data" --user "$monitor" 2>>"$data/admin.log")"
  revoked="$(cut -d. -f2 <<<"$VIGIE_REVOKED_TOKEN")"
  "$VIGIE" device revoke --data "$data" --device "$revoked" 2>>"$data/admin.log"
  # Attachment limits of its own, published to the devices (the tests check they arrive).
  "$VIGIE" serve --data "$data" --listen 127.0.0.1:0 --max-attachment-bytes 3000000 \
    --photo-max-side 800 >"$data/stdout" 2>"$data/hub.log" &
  hub_pids+=("$!")
  for i in $(seq 1 300); do
    line="$(head -n1 "$data/stdout" 2>/dev/null || true)"
    [ -n "$line" ] && break
    kill -0 "${hub_pids[-1]}" 2>/dev/null || { cat "$data/hub.log" >&2; echo "bindings: the hub died" >&2; exit 1; }
    sleep 0.1
  done
  case "$line" in
    "vigie hub listening on http://127.0.0.1:"*) VIGIE_HUB_URL="${line#vigie hub listening on }" ;;
    *) echo "bindings: the hub did not start: '$line'" >&2; cat "$data/hub.log" >&2; exit 1 ;;
  esac
  # The hub's binary and data, for tests that administer it (add a user, change areas, erase),
  # and the users, for tests that enrol devices of their own: the hub binds a device's keys at
  # its first sync, so each store that syncs needs a device (a token) of its own.
  VIGIE_BIN="$VIGIE" VIGIE_HUB_DATA="$data" VIGIE_MONITOR_USER="$monitor" VIGIE_SUPERVISOR_USER="$supervisor"
  export VIGIE_HUB_URL VIGIE_MONITOR_TOKEN VIGIE_QUICKSTART_TOKEN VIGIE_SUPERVISOR_TOKEN VIGIE_REVOKED_TOKEN
  export VIGIE_BIN VIGIE_HUB_DATA VIGIE_MONITOR_USER VIGIE_SUPERVISOR_USER
  log "hub on $VIGIE_HUB_URL (data in $data)"
}

readme_snippet() { # marker: the fenced block after <!-- marker --> in README.md
  awk -v marker="<!-- $1 -->" '
    state == 0 && index($0, marker) == 1 { state = 1; next }
    state == 1 && /^```/ { state = 2; next }
    state == 2 && /^```/ { exit }
    state == 2 { print }' README.md
}

# ---------------------------------------------------------------------------------------------
# Kotlin on the JVM: one kotlinc run for the generated bindings, android/'s Kotlin, the tests and
# the README's quick start; the result is reused while none of them changes.

# The snippet has no package line, as an app's file would have its own: it goes in org.vigie.readme.
readme_snippet "test: kotlin quickstart" >"$work/ReadmeQuickStart.body"
[ -s "$work/ReadmeQuickStart.body" ] || { echo "bindings: README's Kotlin quick start not found" >&2; exit 1; }
{ echo "package org.vigie.readme"; echo; cat "$work/ReadmeQuickStart.body"; } >"$work/ReadmeQuickStart.kt"
kotlin_sources=("$work/generated/kotlin/org/vigie/vigie.kt" "$work/generated/kotlin/org/vigie/core/vigie_core.kt"
  "$work/ReadmeQuickStart.kt")
while IFS= read -r f; do kotlin_sources+=("$f"); done \
  < <(find android/src/main/kotlin android/src/test/kotlin -name '*.kt' | sort)
stamp="$(cat "${kotlin_sources[@]}" <(echo "$KOTLIN_VERSION $JARS") | sha256sum | cut -c1-16)"
classes="$work/kotlin-$stamp.jar"
if [ ! -f "$classes" ]; then
  log "compiling ${#kotlin_sources[@]} Kotlin files (kotlinc, ~1 min)"
  rm -f "$work"/kotlin-*.jar
  JAVA_OPTS="${JAVA_OPTS:--Xmx1g}" "$KOTLIN_HOME/bin/kotlinc" -nowarn -jvm-target 17 \
    -cp "$JARS" -d "$classes.partial.jar" "${kotlin_sources[@]}"
  mv "$classes.partial.jar" "$classes"
else
  log "Kotlin unchanged: reusing $(basename "$classes")"
fi

start_hub "$work/hub-kotlin"
export VIGIE_TEST_DIR="$work/kotlin-stores"
rm -rf "$VIGIE_TEST_DIR"; mkdir -p "$VIGIE_TEST_DIR"
log "running the Kotlin suite (JUnit)"
test_classes=()
while IFS= read -r f; do
  test_classes+=("org.vigie.$(basename "$f" .kt)")
done < <(find android/src/test/kotlin -name '*Test.kt' | sort)
java -Djna.library.path="$LIB_DIR" -cp "$classes:$JARS" org.junit.runner.JUnitCore "${test_classes[@]}"

# ---------------------------------------------------------------------------------------------
# The Android flavour of the generated Kotlin (what android/ ships: it cleans objects with
# android.system.SystemCleaner) must compile with android/'s Kotlin too. Without the Android SDK,
# the three Android APIs it names are stubbed; the result is cached like the JVM build.

android_dir="$work/android-flavour"
scripts/bindings.sh --library "$LIB_DIR/libvigie.so" --android --languages kotlin "$android_dir" >/dev/null
mkdir -p "$android_dir/stubs"
cat >"$android_dir/stubs/AndroidStubs.kt" <<'KT'
package android.os
object Build {
    object VERSION { @JvmField val SDK_INT: Int = 24 }
    object VERSION_CODES { const val UPSIDE_DOWN_CAKE: Int = 34 }
}
KT
cat >"$android_dir/stubs/SystemCleanerStub.kt" <<'KT'
package android.system
object SystemCleaner { fun cleaner(): java.lang.ref.Cleaner = java.lang.ref.Cleaner.create() }
KT
cat >"$android_dir/stubs/RequiresApiStub.kt" <<'KT'
package androidx.annotation
annotation class RequiresApi(val value: Int)
KT
android_sources=("$android_dir/kotlin/org/vigie/vigie.kt" "$android_dir/kotlin/org/vigie/core/vigie_core.kt"
  "$android_dir"/stubs/*.kt)
while IFS= read -r f; do android_sources+=("$f"); done < <(find android/src/main/kotlin -name '*.kt' | sort)
android_stamp="$(cat "${android_sources[@]}" <(echo "$KOTLIN_VERSION $JARS") | sha256sum | cut -c1-16)"
if [ ! -f "$work/android-$android_stamp.ok" ]; then
  log "compiling the Android flavour of the bindings with android/'s Kotlin (kotlinc, ~40 s)"
  rm -f "$work"/android-*.ok
  JAVA_OPTS="${JAVA_OPTS:--Xmx1g}" "$KOTLIN_HOME/bin/kotlinc" -nowarn -jvm-target 17 \
    -cp "$JARS" -d "$android_dir/classes.jar" "${android_sources[@]}"
  touch "$work/android-$android_stamp.ok"
else
  log "Android flavour unchanged: compiled before"
fi

# ---------------------------------------------------------------------------------------------
# Python

readme_snippet "test: python quickstart" >"$work/readme_quickstart.py"
[ -s "$work/readme_quickstart.py" ] || { echo "bindings: README's Python quick start not found" >&2; exit 1; }
readme_snippet "test: python offline" >"$work/readme_offline.py"
[ -s "$work/readme_offline.py" ] || { echo "bindings: README's Python offline snippet not found" >&2; exit 1; }
start_hub "$work/hub-python"
export VIGIE_TEST_DIR="$work/python-stores" VIGIE_README_QUICKSTART="$work/readme_quickstart.py" \
  VIGIE_README_OFFLINE="$work/readme_offline.py"
rm -rf "$VIGIE_TEST_DIR"; mkdir -p "$VIGIE_TEST_DIR"
log "running the Python suite (pytest)"
PYTHONPATH="$work/generated/python" PYTHONDONTWRITEBYTECODE=1 \
  "$VENV/bin/python" -m pytest -p no:cacheprovider bindings/python/tests

# ---------------------------------------------------------------------------------------------
# Swift: no toolchain here. The header was checked by scripts/bindings.sh; the README's Swift
# quick start must be the one the Swift tests compile.

readme_snippet "test: swift quickstart" >"$work/ReadmeQuickStart.swift"
if ! diff -u ios/Tests/VigieTests/ReadmeQuickStart.swift "$work/ReadmeQuickStart.swift" >&2; then
  echo "bindings: README's Swift quick start differs from ios/Tests/VigieTests/ReadmeQuickStart.swift" >&2
  exit 1
fi
log "Swift: bindings generated, header checked, README quick start matches the Swift tests (not compiled: no Swift toolchain here)"
log "all binding suites passed"

#!/usr/bin/env bash
# The main job: the hub on its embedded SQLite store, with its console at /console/.
# The first run in a fresh checkout fills it with a demo district (the reference workload at a
# small scale, sent by simulated phones through real sync) and prints the console's address and
# a demo sign-in. VIGIE_DEMO=0 skips the demo: a supervisor is created instead, with a one-time
# console link and a device token.
# The sample area tree (reference/areas-CI.json) is published first: a hub serves a country's
# records once its area tree is published. The hub is encrypted: its first command makes the key
# file <data>-key/hub.key (back it up apart from the data; README, "The hub's key").
#   VIGIE_DATA (default ./vigie-data), VIGIE_LISTEN (default 127.0.0.1:8470),
#   VIGIE_DEMO (default 1), VIGIE_DEMO_SCALE (default 0.1: 200 workplaces, 1,000 visits, 300 cases)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
scripts/setup.sh
cargo build --release --locked -p vigie-server -p vigie-bench
vigie="$CARGO_TARGET_DIR/release/vigie"
bench="$CARGO_TARGET_DIR/release/vigie-bench"
data="${VIGIE_DATA:-vigie-data}"
listen="${VIGIE_LISTEN:-127.0.0.1:8470}"
url="http://$listen"
fresh=0
[ -e "$data/hub.db" ] || fresh=1

if [ "$fresh" -eq 1 ]; then
  # A hub serves a country's records once its area tree is published.
  "$vigie" reference publish --data "$data" reference/areas-CI.json >/dev/null
  echo "The hub's key is in ${data}-key/hub.key: back it up apart from $data (without it the hub cannot be read)." >&2
fi
if [ "$fresh" -eq 1 ] && [ "${VIGIE_DEMO:-1}" = "0" ]; then
  user=$("$vigie" user add --data "$data" --name "Superviseur régional" --role supervisor --area CI-R1)
  token=$("$vigie" device enrol --data "$data" --user "$user")
  link=$("$vigie" console invite --data "$data" --user "$user" --public-url "$url")
  echo "Created supervisor $user." >&2
  echo "  Console: choose a sign-in name and password at $link (once, within 72 h)" >&2
  echo "  A device syncs with: $vigie sync --hub $url --store phone.db --token $token" >&2
fi

"$vigie" serve --data "$data" --listen "$listen" --public-url "$url" &
hub=$!
trap 'kill "$hub" 2>/dev/null || true' INT TERM EXIT
for _ in $(seq 1 100); do
  curl -sf "$url/v1/health" >/dev/null 2>&1 && break
  kill -0 "$hub" 2>/dev/null || { echo "the hub stopped; see above" >&2; exit 1; }
  sleep 0.1
done

if [ "$fresh" -eq 1 ] && [ "${VIGIE_DEMO:-1}" != "0" ]; then
  echo "Filling a DEMO district (fictitious people and places) through real sync..." >&2
  "$bench" demo --hub "$url" --data "$data" --scale "${VIGIE_DEMO_SCALE:-0.1}" >/dev/null
fi
if [ -e "$data/demo-sign-in.txt" ]; then
  echo "== DEMO data: every person and place here is fictitious ==" >&2
  cat "$data/demo-sign-in.txt" >&2
else
  echo "Console: $url/console/ (vigie console invite --data $data --user <id> for a sign-in link)" >&2
fi
wait "$hub"

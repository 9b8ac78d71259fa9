#!/usr/bin/env bash
# The main job: the hub on its embedded SQLite store. The first run publishes the sample area
# tree (reference/areas-CI.json), creates a supervisor for region CI-R1 and enrols one device for
# them, printing the token a device syncs with. The hub is encrypted: its first command makes the
# key file <data>-key/hub.key (back it up; README, "The hub's key").
#   VIGIE_DATA (default ./vigie-data), VIGIE_LISTEN (default 127.0.0.1:8470)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
scripts/setup.sh
cargo build --release --locked -p vigie-server
vigie="$CARGO_TARGET_DIR/release/vigie"
data="${VIGIE_DATA:-vigie-data}"
listen="${VIGIE_LISTEN:-127.0.0.1:8470}"
if [ ! -e "$data/hub.db" ]; then
  # A hub serves a country's records once its area tree is published.
  "$vigie" reference publish --data "$data" reference/areas-CI.json >&2
  user=$("$vigie" user add --data "$data" --name "Superviseur régional" --role supervisor --area CI-R1)
  token=$("$vigie" device enrol --data "$data" --user "$user")
  echo "The hub's key is in ${data}-key/hub.key: back it up apart from $data (without it the hub cannot be read)." >&2
  echo "Created supervisor $user; a device syncs with:" >&2
  echo "  $vigie sync --hub http://$listen --store phone.db --token $token" >&2
fi
exec "$vigie" serve --data "$data" --listen "$listen"

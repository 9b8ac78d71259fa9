#!/usr/bin/env bash
# A PostgreSQL server for the tests and benchmarks, private to this machine's Vigie cache:
# installed from Debian's packages if missing, initialised once, started on 127.0.0.1 only.
#
#   scripts/postgres.sh url    start it if needed, print its URL (postgres://vigie@127.0.0.1:PORT/postgres)
#   scripts/postgres.sh stop   stop it
#   scripts/postgres.sh clean  drop the databases earlier test and bench runs left (vigie_*)
#   scripts/postgres.sh bin    print the directory of PostgreSQL's programs (pg_dump, psql)
#   scripts/postgres.sh log    print the path of the server's log (what tests scan for names)
#
# Tests never use a server this script did not start.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

# As root the server runs as `postgres`, which cannot enter root's home: its files go elsewhere.
if [ "$(id -u)" -eq 0 ]; then
    PG_HOME="${VIGIE_PG_HOME:-/var/tmp/vigie-postgres}"
else
    PG_HOME="${VIGIE_PG_HOME:-$HOME/.cache/vigie/postgres}"
fi
PG_PORT="${VIGIE_PG_PORT:-54329}"
mkdir -p "$PG_HOME"

find_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

install_postgres() {
    echo "postgres.sh: installing PostgreSQL from Debian's packages" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
}

# PostgreSQL refuses to run as root: as root, it runs as the `postgres` account.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start() {
    local bin
    bin="$(find_bin)"
    if [ -z "$bin" ]; then
        install_postgres
        bin="$(find_bin)"
    fi
    local data="$PG_HOME/data" socket="$PG_HOME/socket"
    mkdir -p "$socket"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$PG_HOME" "$socket"
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        as_owner "$bin/initdb" -D "$data" -U vigie --auth=trust --encoding=UTF8 --no-instructions >"$PG_HOME/initdb.log" 2>&1 \
            || { cat "$PG_HOME/initdb.log" >&2; exit 1; }
    fi
    if ! as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        # 127.0.0.1 only; enough connections for two hub processes and the tests.
        as_owner "$bin/pg_ctl" -D "$data" -l "$PG_HOME/server.log" -w -t 60 \
            -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $socket -c max_connections=200" \
            start >/dev/null 9>&- \
            || { tail -20 "$PG_HOME/server.log" >&2; exit 1; }
    fi
    echo "postgres://vigie@127.0.0.1:$PG_PORT/postgres"
}

stop() {
    local bin
    bin="$(find_bin)"
    [ -n "$bin" ] && [ -f "$PG_HOME/data/PG_VERSION" ] || return 0
    as_owner "$bin/pg_ctl" -D "$PG_HOME/data" -m fast stop >/dev/null 2>&1 || true
}

case "${1:-url}" in
    url)
        # Several test binaries may ask at once: one starts it, the others wait.
        exec 9>"$PG_HOME/.lock"
        flock 9
        start
        ;;
    stop) stop ;;
    bin) find_bin ;;
    log) echo "$PG_HOME/server.log" ;;
    clean)
        exec 9>"$PG_HOME/.lock"
        flock 9
        url="$(start)"
        bin="$(find_bin)"
        "$bin/psql" "$url" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'vigie\_%'" |
            while IFS= read -r db; do
                "$bin/psql" "$url" -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null
            done
        ;;
    *) echo "usage: $0 url|stop|clean|bin|log" >&2; exit 2 ;;
esac

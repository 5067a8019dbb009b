#!/usr/bin/env bash
# Manage tally's throwaway PostgreSQL 15 cluster (owned by the postgres OS user).
#   scripts/db.sh start|stop|dsn|status [dbname]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
PGPORT="${PGPORT:-54329}"
PGUSER_OS="${PGUSER_OS:-postgres}"
LINK="$ROOT/.pgdata"

as_pg() {
    if [ "$(id -un)" = "$PGUSER_OS" ]; then "$@"; else runuser -u "$PGUSER_OS" -- "$@"; fi
}

# The cluster lives under .pgdata/ when the postgres user can reach the project
# directory; otherwise (a clone under /root, mode 700) it lives under /var/tmp
# and .pgdata is a symlink to it.
resolve_base() {
    if [ -L "$LINK" ]; then readlink -f "$LINK"; return; fi
    if [ -d "$LINK" ]; then echo "$LINK"; return; fi
    if as_pg test -x "$ROOT" 2>/dev/null && as_pg test -r "$ROOT" 2>/dev/null; then
        mkdir -p "$LINK"; chown "$PGUSER_OS": "$LINK"; echo "$LINK"
    else
        local alt
        alt="/var/tmp/tally-pgdata-$(echo "$ROOT" | md5sum | cut -c1-12)"
        mkdir -p "$alt"; chown "$PGUSER_OS": "$alt"; ln -sfn "$alt" "$LINK"; echo "$alt"
    fi
}

BASE="$(resolve_base)"
DATA="$BASE/data"
SOCK="$BASE/run"
LOG="$BASE/postgres.log"

dsn() { echo "host=$SOCK port=$PGPORT user=postgres dbname=${1:-postgres}"; }

start() {
    if [ ! -s "$DATA/PG_VERSION" ]; then
        as_pg mkdir -p "$DATA" "$SOCK"
        as_pg "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
        cat >>"$DATA/postgresql.conf" <<CONF
# tally throwaway cluster
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$SOCK'
shared_preload_libraries = 'pg_cron,pg_stat_statements'
cron.database_name = 'tally'
max_connections = 200
shared_buffers = 512MB
fsync = on
synchronous_commit = on
max_wal_size = 4GB
log_min_messages = warning
log_lock_waits = on
timezone = 'UTC'
CONF
        # loopback only, passwordless: a throwaway cluster for tests and demos
        echo "host all all 127.0.0.1/32 trust" >>"$DATA/pg_hba.conf"
    fi
    as_pg mkdir -p "$SOCK"
    if ! as_pg "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null
    fi
    # pg_cron's launcher wants its database to exist.
    if ! "$PGBIN/psql" "$(dsn postgres)" -XAtqc "SELECT 1 FROM pg_database WHERE datname = 'tally'" | grep -q 1; then
        "$PGBIN/psql" "$(dsn postgres)" -Xqc "CREATE DATABASE tally" >/dev/null
    fi
    echo "tally cluster up: $(dsn tally)"
}

stop() {
    if [ -s "$DATA/PG_VERSION" ] && as_pg "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    fi
    echo "tally cluster stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    dsn) dsn "${2:-tally}" ;;
    datadir) echo "$DATA" ;;
    status) as_pg "$PGBIN/pg_ctl" -D "$DATA" status ;;
    *) echo "usage: $0 start|stop|dsn [db]|datadir|status" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Manage tally's throwaway PostgreSQL 15 cluster (owned by the postgres OS user).
#   scripts/db.sh start|stop|dsn|status [dbname]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
PGPORT="${PGPORT:-54329}"
PGUSER_OS="${PGUSER_OS:-postgres}"
LINK="$ROOT/.pgdata"

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

# The cluster lives under .pgdata/, or under /var/tmp behind a .pgdata symlink
# when the postgres user cannot reach the project directory.
BASE="$(node_base "$LINK" tally-pgdata)"
DATA="$BASE/data"
SOCK="$BASE/run"
LOG="$BASE/postgres.log"

dsn() { echo "host=$SOCK port=$PGPORT user=postgres dbname=${1:-postgres}"; }

start() {
    node_init "$DATA" <<CONF
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
    node_start "$DATA" "$LOG" "$SOCK"
    # pg_cron's launcher wants its database to exist.
    if ! "$PGBIN/psql" "$(dsn postgres)" -XAtqc "SELECT 1 FROM pg_database WHERE datname = 'tally'" | grep -q 1; then
        "$PGBIN/psql" "$(dsn postgres)" -Xqc "CREATE DATABASE tally" >/dev/null
    fi
    echo "tally cluster up: $(dsn tally)"
}

stop() {
    node_stop "$DATA"
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

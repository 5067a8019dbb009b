#!/usr/bin/env bash
# A throwaway Citus cluster on loopback for tally: a coordinator and two
# workers (ports CITUS_PORT, default 54339, and the next two), owned by the
# postgres OS user, each with what tally needs (citus and pg_cron preloaded,
# plpython3u, pg_partman). Idempotent.
#   scripts/citus.sh start            coordinator + 2 workers up and registered
#   scripts/citus.sh stop             stop every node of this cluster
#   scripts/citus.sh dsn [db]         the coordinator's libpq DSN (db: tally)
#   scripts/citus.sh node-dsn N [db]  node N's DSN (0 = coordinator, 1.. = workers)
#   scripts/citus.sh add-worker       start worker 3 (port + 3) and register it
#   scripts/citus.sh pid N            node N's postmaster pid
#   scripts/citus.sh start-node N / stop-node N [mode]   one node, for fault tests
#   scripts/citus.sh datadir N        node N's data directory
#   scripts/citus.sh fresh-db NAME    (re)create database NAME on every node, Citus in it, workers registered
#   scripts/citus.sh fresh-db NAME W  the same with only the first W workers (the others left out)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
CITUS_PORT="${CITUS_PORT:-54339}"
PGUSER_OS="${PGUSER_OS:-postgres}"
LINK="$ROOT/.citusdata"
# Where the Citus source and its build script are kept when no Citus is
# installed: CITUS_BUILD, or ../shared/citus beside the project.
BUILD="${CITUS_BUILD:-$(cd "$ROOT/.." && pwd)/shared/citus/build.sh}"

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

# Citus installed (from its packages, or built here before), or built from
# ../shared/citus when that is at hand; otherwise say what to install.
ensure_citus() {
    local libdir sharedir building
    libdir="$("$PGBIN/pg_config" --pkglibdir)"
    sharedir="$("$PGBIN/pg_config" --sharedir)"
    # Present while a build of ours runs: one that was interrupted may have
    # installed part of Citus, which would pass for installed. Its two files
    # that tell "installed" go, so the build runs again and installs all of it.
    building="$libdir/.tally-citus-build"
    if [ -f "$building" ]; then
        echo "citus: the last build was interrupted; building it again"
        rm -f "$libdir/citus.so" "$sharedir/extension/citus.control"
    fi
    if [ -f "$libdir/citus.so" ] && [ -f "$sharedir/extension/citus.control" ]; then return; fi
    if [ -x "$BUILD" ]; then
        echo "citus: not installed; building it from $(dirname "$BUILD") (a few minutes)"
        finish_dpkg
        touch "$building" 2>/dev/null || true  # (not root: the build says what to do)
        "$BUILD"
        rm -f "$building"
        return
    fi
    echo "citus: not installed. Install Citus for PostgreSQL 15 (Debian/Ubuntu: the package" \
        "postgresql-15-citus-13.x from Citus's repository, https://docs.citusdata.com/en/stable/installation/)," \
        "then run this again." >&2
    exit 1
}

BASE="$(node_base "$LINK" tally-citusdata)"
SOCK="$BASE/run"
port() { echo $((CITUS_PORT + $1)); }
data() { echo "$BASE/node$1"; }
dsn_of() { echo "host=$SOCK port=$(port "$1") user=postgres dbname=${2:-tally}"; }
psql_on() { local n=$1; shift; "$PGBIN/psql" -X -v ON_ERROR_STOP=1 -qAt "$(dsn_of "$n" "${DB:-tally}")" "$@"; }

# The cluster's ports (a worker added later's too) kept out of the kernel's
# ephemeral range where we may: a node started again after a stop, or added,
# must find its port free, and any outgoing connection (Citus's own between
# the nodes, a test's) could otherwise hold it as its local port for as long
# as it lives. Without root this is skipped.
reserve_ports() {
    local f=/proc/sys/net/ipv4/ip_local_reserved_ports cur want
    [ -w "$f" ] || return 0
    want="$CITUS_PORT-$((CITUS_PORT + 3))"
    cur="$(cat "$f" 2>/dev/null)" || return 0
    case ",$cur," in *",$want,"*) return 0 ;; esac
    echo "${cur:+$cur,}$want" >"$f" 2>/dev/null || true
}

start_node() {
    local n=$1 d
    reserve_ports
    d="$(data "$n")"
    node_init "$d" <<CONF
# tally throwaway Citus cluster, node $n
listen_addresses = '127.0.0.1'
port = $(port "$n")
unix_socket_directories = '$SOCK'
shared_preload_libraries = 'citus,pg_cron'
cron.database_name = 'tally'
max_connections = 300
max_prepared_transactions = 300
# Citus's maintenance daemon and pg_cron's workers, per database
max_worker_processes = 32
shared_buffers = 256MB
max_wal_size = 2GB
log_min_messages = warning
timezone = 'UTC'
citus.node_conninfo = 'sslmode=disable'
CONF
    node_start "$d" "$d/postgres.log" "$SOCK"
    if ! DB=postgres psql_on "$n" -c "SELECT 1 FROM pg_database WHERE datname = 'tally'" | grep -q 1; then
        DB=postgres psql_on "$n" -c "CREATE DATABASE tally"
    fi
    psql_on "$n" -c "CREATE EXTENSION IF NOT EXISTS citus"
}

stop_node() {
    node_stop "$(data "$1")" "${2:-fast}"
}

register() {
    local n=$1
    psql_on 0 -c "SELECT citus_add_node('127.0.0.1', $(port "$n"))
                  WHERE NOT EXISTS (SELECT FROM pg_dist_node WHERE nodeport = $(port "$n"))" >/dev/null
}

# A database of its own on every node (tests): dropped and made again,
# with the citus extension and the workers registered.
fresh_db() {
    local name=$1 n nodes=(0 1 2)
    if [ -s "$(data 3)/PG_VERSION" ]; then nodes+=(3); fi
    if [ -n "${2:-}" ]; then
        if ! [[ "$2" =~ ^[0-9]+$ ]] || [ "$2" -lt 1 ] || [ "$2" -ge "${#nodes[@]}" ]; then
            echo "citus.sh fresh-db: $2 workers: this cluster has 1 to $((${#nodes[@]} - 1))" >&2
            exit 2
        fi
        nodes=("${nodes[@]:0:$(($2 + 1))}")
    fi
    for n in "${nodes[@]}"; do
        DB=postgres psql_on "$n" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "CREATE DATABASE $name"
        DB=$name psql_on "$n" -c "CREATE EXTENSION citus"
    done
    DB=$name psql_on 0 -c "SELECT citus_set_coordinator_host('127.0.0.1', $(port 0))" >/dev/null
    for n in "${nodes[@]:1}"; do
        DB=$name psql_on 0 -c "SELECT citus_add_node('127.0.0.1', $(port "$n"))" >/dev/null
    done
    dsn_of 0 "$name"
}

start() {
    ensure_citus
    for n in 0 1 2; do start_node "$n"; done
    # A third worker, once added, comes back with the cluster.
    if [ -s "$(data 3)/PG_VERSION" ]; then start_node 3; fi
    psql_on 0 -c "SELECT citus_set_coordinator_host('127.0.0.1', $(port 0))" >/dev/null
    for n in 1 2; do register "$n"; done
    echo "citus cluster up: coordinator $(dsn_of 0), workers on ports $(port 1) and $(port 2)"
}

stop() {
    for n in 3 2 1 0; do stop_node "$n"; done
    echo "citus cluster stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    dsn) dsn_of 0 "${2:-tally}" ;;
    node-dsn) dsn_of "$2" "${3:-tally}" ;;
    add-worker) start_node 3; register 3; echo "worker 3 added on port $(port 3)" ;;
    start-node) start_node "$2" ;;
    stop-node) stop_node "$2" "${3:-fast}" ;;
    pid) head -1 "$(data "$2")/postmaster.pid" ;;
    datadir) data "${2:-0}" ;;
    fresh-db) fresh_db "$2" "${3:-}" ;;
    *) echo "usage: $0 start|stop|dsn [db]|node-dsn N [db]|add-worker|start-node N|stop-node N [mode]|pid N|datadir N|fresh-db NAME [W]" >&2
       exit 2 ;;
esac

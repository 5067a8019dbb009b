# shellcheck shell=bash
# Sourced by deps.sh, db.sh and citus.sh: the set-up steps they share. Each
# one can be interrupted anywhere (Ctrl-C, a kill, a machine that stops) and
# finishes the job when it runs again: it tells a half-done state from a
# done one and makes it again.
#   as_pg CMD...               CMD as the postgres OS user (paths absolute)
#   finish_dpkg                finish what an interrupted apt-get left half-installed
#   node_base LINK NAME        the directory for a cluster's files: LINK, or /var/tmp/NAME-<hash> behind LINK
#   node_init DATA             make DATA with initdb once, with the configuration read from stdin
#   node_running DATA          DATA's postmaster runs
#   node_start DATA LOG SOCK   start DATA's postmaster unless it runs
#   node_stop DATA [MODE]      stop it if it runs
# Needs ROOT (the checkout), PGBIN and PGUSER_OS.

as_pg() {
    if [ "$(id -un)" = "$PGUSER_OS" ]; then "$@"; return; fi
    # from / : the postgres user may not enter the current directory (a clone under /root),
    # and PostgreSQL's programs say so; every path given here is absolute
    (cd / && runuser -u "$PGUSER_OS" -- "$@")
}

# An apt-get or dpkg that was stopped leaves packages unpacked but not
# configured, and apt-get then refuses to install anything ("dpkg was
# interrupted"). Configure what is pending; `apt-get install -f` (the caller's
# next step) mends what this cannot, such as a dependency never unpacked.
finish_dpkg() {
    if [ -n "$(dpkg --audit 2>/dev/null)" ] || [ -n "$(ls -A /var/lib/dpkg/updates 2>/dev/null)" ]; then
        echo "finishing an interrupted package installation (dpkg --configure -a)"
        DEBIAN_FRONTEND=noninteractive dpkg --configure -a || true
    fi
}

# The cluster's files live under LINK when the postgres user can reach the
# project directory; otherwise (a clone under /root, mode 700) under /var/tmp,
# with LINK a symlink to them. The directory is made again if it went away
# (/var/tmp emptied) and given to the postgres user if an interrupted run
# made it without.
node_base() {
    local link=$1 name=$2 dir
    if [ -L "$link" ]; then
        dir="$(readlink -f "$link")"
    elif [ -d "$link" ]; then
        dir="$link"
    elif as_pg test -x "$ROOT" 2>/dev/null && as_pg test -r "$ROOT" 2>/dev/null; then
        dir="$link"
    else
        dir="/var/tmp/$name-$(echo "$ROOT" | md5sum | cut -c1-12)"
        ln -sfn "$dir" "$link"
    fi
    if [ ! -d "$dir" ] || [ "$(stat -c %U "$dir")" != "$PGUSER_OS" ]; then
        mkdir -p "$dir"
        chown "$PGUSER_OS": "$dir"
    fi
    echo "$dir"
}

# A data directory is there whole or not at all: initdb writes DATA.new, the
# configuration is appended to it, and only then is it renamed DATA. A DATA
# without PG_VERSION or without tally's configuration was left by an older
# set-up that initdb'd in place and was interrupted: it is made again.
node_init() {
    local data=$1 conf
    conf="$(cat)"
    if [ -s "$data/PG_VERSION" ] && grep -q '^# tally throwaway' "$data/postgresql.conf" 2>/dev/null; then
        return
    fi
    as_pg rm -rf "$data" "$data.new"
    as_pg "$PGBIN/initdb" -D "$data.new" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    printf '%s\n' "$conf" >>"$data.new/postgresql.conf"
    # loopback only, passwordless: a throwaway cluster for tests and demos
    echo "host all all 127.0.0.1/32 trust" >>"$data.new/pg_hba.conf"
    as_pg mv "$data.new" "$data"
}

# DATA's postmaster runs: its postmaster.pid names a live process whose
# working directory is DATA. (pg_ctl status asks only whether the pid is
# alive: after a restart it may be another program's.)
node_running() {
    local pid
    pid="$(head -1 "$1/postmaster.pid" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [ "$(as_pg readlink "/proc/$pid/cwd" 2>/dev/null)" = "$(readlink -f "$1")" ]
}

# A postmaster that was killed, or a machine that stopped, leaves its
# postmaster.pid and its socket's lock file behind. PostgreSQL clears them
# itself when their pid is gone, but refuses to start while that pid is
# another live process of the postgres user. When DATA's postmaster does not
# run, they are stale: remove them first.
node_clear_stale() {
    local data=$1 sock=$2 pid f
    [ -f "$data/postmaster.pid" ] || return 0
    pid="$(head -1 "$data/postmaster.pid")"
    as_pg rm -f "$data/postmaster.pid"
    for f in "$sock"/.s.PGSQL.*.lock; do
        if [ -f "$f" ] && [ "$(head -1 "$f")" = "$pid" ]; then as_pg rm -f "$f" "${f%.lock}"; fi
    done
}

node_start() {
    local data=$1 log=$2 sock=$3 try
    if node_running "$data"; then return; fi
    node_clear_stale "$data" "$sock"
    as_pg mkdir -p "$sock"
    # (A loopback port in the ephemeral range can be held for a moment by a
    # client connection's local end: try again before giving up.)
    for try in 1 2 3 4 5; do
        if as_pg "$PGBIN/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null; then return; fi
        if node_running "$data"; then return; fi
        if [ "$try" -eq 5 ]; then
            echo "the cluster in $data did not start; the end of $log:" >&2
            tail -5 "$log" >&2 || true
            return 1
        fi
        sleep 2
    done
}

node_stop() {
    if node_running "$1"; then
        as_pg "$PGBIN/pg_ctl" -D "$1" -m "${2:-fast}" -w stop >/dev/null
    fi
}

#!/usr/bin/env bash
# Install what tally needs on Debian 12: server packages (only the missing
# ones) and a Python venv with the pinned dependencies. Idempotent; a run that
# was interrupted (Ctrl-C, a kill) is finished by running it again.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PGUSER_OS="${PGUSER_OS:-postgres}"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

PKGS=(python3-venv postgresql-15 postgresql-contrib postgresql-15-partman postgresql-15-pgtap postgresql-15-cron
      postgresql-plpython3-15 postgresql-15-plpgsql-check pgtap redis-server pgbouncer)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "tally deps: missing Debian packages (${missing[*]}); run as root or install them" >&2
        exit 1
    fi
    echo "tally deps: installing ${missing[*]}"
    finish_dpkg
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -f "${missing[@]}" >/dev/null
fi

# The venv is made in place (a venv cannot be moved: its scripts name their
# interpreter by its absolute path), in two steps, each done once its stamp is
# written, last: the hash of the files it was made from. .tally-requirements:
# pip works and the pinned packages are installed; .tally-deps: the client
# too, and it imports. A venv with neither stamp is one an interrupted run
# left half-made (no pip, packages half unpacked): it is removed and made
# again. One with an older stamp is brought up to date in place.
VENV="$ROOT/.venv"
STAMP="$VENV/.tally-deps"
REQ_STAMP="$VENV/.tally-requirements"
req="$(sha256sum <"$ROOT/requirements.txt" | cut -d' ' -f1)"
all="$(cat "$ROOT/requirements.txt" "$ROOT/python_client/pyproject.toml" | sha256sum | cut -d' ' -f1)"
pip=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
stamp() { echo "$1" >"$2.new" && mv "$2.new" "$2"; }
if [ "$(cat "$STAMP" 2>/dev/null)" != "$all" ]; then
    if [ "$(cat "$REQ_STAMP" 2>/dev/null)" != "$req" ]; then
        if { [ ! -f "$STAMP" ] && [ ! -f "$REQ_STAMP" ]; } || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
            if [ -e "$VENV" ]; then echo "tally deps: .venv was left unfinished; making it again"; fi
            rm -rf "$VENV"
            python3 -m venv "$VENV"
        fi
        rm -f "$STAMP" "$REQ_STAMP"  # unfinished from here until they are written again
        "${pip[@]}" -r "$ROOT/requirements.txt"
        "$VENV/bin/python" -m pip --version >/dev/null
        stamp "$req" "$REQ_STAMP"
    fi
    rm -f "$STAMP"
    "${pip[@]}" --no-deps -e "$ROOT/python_client"
    "$VENV/bin/python" -I -c "import tally"
    stamp "$all" "$STAMP"
fi

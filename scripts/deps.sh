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
# interpreter by its absolute path) and counts as ready only once its stamp,
# written last, holds the hash of the files it was made from. A venv without
# the stamp is one an interrupted run left half-made (no pip, packages half
# unpacked): it is removed and made again. One with an older stamp is
# brought up to date in place.
VENV="$ROOT/.venv"
STAMP="$VENV/.tally-deps"
want="$(cat "$ROOT/requirements.txt" "$ROOT/python_client/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    if [ ! -f "$STAMP" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        if [ -e "$VENV" ]; then echo "tally deps: .venv was left unfinished; making it again"; fi
        rm -rf "$VENV"
        python3 -m venv "$VENV"
    fi
    rm -f "$STAMP"  # unfinished from here until it is written again
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements.txt"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e "$ROOT/python_client"
    "$VENV/bin/python" -m pip --version >/dev/null
    "$VENV/bin/python" -I -c "import tally"
    echo "$want" >"$STAMP.new"
    mv "$STAMP.new" "$STAMP"
fi

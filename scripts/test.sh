#!/usr/bin/env bash
# Install everything the tests need (database servers and clients via apt-get when
# missing, the Python tools pinned), then lint, type-check and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
scripts/bootstrap.sh test
echo "== ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "== mypy (strict, src/)"
.venv/bin/mypy
echo "== pytest (SQLite metadata)"
.venv/bin/pytest "$@"
if [ "$#" -eq 0 ]; then
    # The API and job tests again with the metadata in PostgreSQL (asyncpg).
    echo "== pytest (PostgreSQL metadata)"
    BACKUP_API_TEST_METADATA=postgresql .venv/bin/pytest \
        tests/test_errors.py tests/test_authorization.py tests/test_backup_failures.py \
        tests/test_faults.py tests/test_restores.py tests/test_restore_targets.py \
        tests/test_security_injection.py tests/test_security_limits.py \
        tests/test_security_ids.py tests/test_fairness.py tests/test_disk_limits.py
fi

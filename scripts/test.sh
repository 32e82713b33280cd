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
        tests/api/test_errors.py tests/api/test_authorization.py tests/jobs/test_backup_failures.py \
        tests/jobs/test_faults.py tests/jobs/test_restores.py tests/jobs/test_restore_targets.py \
        tests/security/test_security_injection.py tests/security/test_security_limits.py \
        tests/security/test_security_ids.py \
        tests/accounts/test_api_tokens.py tests/retention/test_retention.py \
        tests/schedules/test_schedules.py tests/storages/test_storages.py tests/copies/test_copies.py \
        tests/encryption/test_settings.py tests/encryption/test_encrypted_backups.py \
        tests/encryption/test_identity_restart.py tests/encryption/test_encrypted_copies.py \
        tests/events/test_events.py tests/metrics/test_metrics.py tests/metrics/test_overdue.py \
        tests/audit/test_audit_trail.py tests/notifications/test_channels.py \
        tests/notifications/test_deliveries.py tests/notifications/test_heartbeats.py \
        tests/dashboard/test_session.py tests/dashboard/test_authorization.py tests/dashboard/test_channels.py \
        tests/drills/test_drills.py \
        tests/progress/test_progress.py tests/progress/test_events.py
fi

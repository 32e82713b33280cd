"""Every setting of the service, read once from the environment (prefix ``BACKUP_API_``)."""

from __future__ import annotations

import ipaddress
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./db/backup_api.sqlite3"


def _default_concurrency() -> int:
    return os.cpu_count() or 2


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BACKUP_API_", extra="ignore")

    # --- HTTP server
    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # ``json``: one JSON object a line (time, level, logger, message, request/user/job id),
    # for a log collector; ``text``: plain lines for a person.
    log_format: Literal["text", "json"] = "text"
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    # Addresses (or networks) of the reverse proxies whose X-Forwarded-For / -Proto headers
    # are believed; from anyone else those headers are ignored (they would choose the
    # address the login throttle counts and the access log shows).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # A connection whose request line and headers are not complete this long after the
    # connection (or the request's first byte) is closed.
    header_timeout_seconds: float = Field(default=10.0, gt=0)

    # --- metadata database and files
    database_url: str = DEFAULT_DATABASE_URL
    backup_root: Path = Path("db/backups")
    # Where generated key files live when the keys are not given; defaults to the
    # directory of the SQLite file (or ./db for a server database).
    secrets_dir: Path | None = None

    # --- auth
    jwt_secret: SecretStr | None = None
    jwt_expire_minutes: int = Field(default=60, ge=1)
    allow_registration: bool = True
    # How long a token's account (id, role) is trusted without reading it again; changes
    # made through this service apply at once, the cache only hides outside edits.
    auth_cache_seconds: float = Field(default=10.0, ge=0)
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    login_lockout_seconds: int = Field(default=300, ge=1)
    # Personal API tokens: how many an account may create per hour, and hold at once.
    api_token_creations_per_hour: int = Field(default=20, ge=1)
    max_api_tokens_per_user: int = Field(default=100, ge=1)

    # --- credentials of the registered databases
    encryption_key: SecretStr | None = None
    allowed_db_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Outbound targets that non-admins choose (S3 endpoints, webhooks) must resolve to
    # public addresses, unless listed here (names and CIDRs). Admins are not limited.
    allowed_outbound_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Lets every account, not only admins, reach servers that do not check the password
    # they are given (PostgreSQL trust, MySQL accounts without a password): they then
    # connect with the service's own network position, as the operator would.
    unsafe_allow_unauthenticated_db_for_all_users: bool = False

    # --- background jobs
    max_concurrent_jobs: int = Field(default_factory=_default_concurrency, ge=1)
    # Pending jobs (backups and restores) one user may have queued or running.
    max_active_backups_per_user: int = Field(default=10, ge=1)
    # Jobs one user may run at once; unset: one slot less than the whole, so that a user
    # whose jobs hang (a locked table, a server that trickles) always leaves a slot free.
    max_running_jobs_per_user: int | None = Field(default=None, ge=1)
    dump_timeout_seconds: float = Field(default=6 * 3600, gt=0)
    dump_idle_timeout_seconds: float = Field(default=300, gt=0)
    connect_timeout_seconds: int = Field(default=10, ge=1)
    # Connection tests (POST /api/databases/{id}/test) one user may run within the window:
    # each makes the service connect where the user's database points.
    connection_tests_per_user: int = Field(default=10, ge=1)
    connection_tests_window_seconds: int = Field(default=60, ge=1)
    error_tail_bytes: int = Field(default=4096, ge=256, le=65536)
    # Niceness of the archive processes (compression, archive writes, restores' reading):
    # the lowest of all, since compression can lag into the read-ahead while the tool and
    # its database server go on; on an idle machine nothing is lost.
    job_nice: int = Field(default=15, ge=0, le=19)
    # Niceness of the dump and restore tools (and of their scheduling group): above the
    # archive processes, so the tool and its server set the pace, and below the API's
    # requests, so a running backup slows them as little as it can.
    tool_nice: int = Field(default=5, ge=0, le=19)
    # How often a job's event stream (GET /api/backups/{id}/events) sends its progress.
    progress_interval_seconds: float = Field(default=0.5, gt=0, le=1.0)

    # --- schedules
    # New attempts after a scheduled backup failed, and the wait before each; every
    # attempt is a backup of its own (trigger "retry").
    schedule_retries: int = Field(default=2, ge=0, le=100)
    schedule_retry_delay_seconds: float = Field(default=600, ge=0)
    # Besides the next slot, how often the scheduler reads the schedules again (changes
    # and failures that another service process on the same metadata database made).
    scheduler_poll_seconds: float = Field(default=30, gt=0)

    # --- notifications
    # Each attempt to deliver a notification (a webhook, an apprise message, a heartbeat)
    # gives up after this long; at most this many are sent at once.
    notification_timeout_seconds: float = Field(default=10, gt=0)
    notification_concurrency: int = Field(default=4, ge=1)

    # --- disk
    # Bytes of stored backups (completed archives) per user before new backups are
    # refused; unset: no quota.
    user_quota_bytes: int | None = Field(default=None, ge=1)
    # Share of the backup root's filesystem kept free: no backup starts below it, and a
    # running one that crosses it is stopped, so one large dump cannot fill the disk.
    disk_reserve_percent: float = Field(default=5.0, ge=0, le=100)

    # --- archive
    compression: Literal["isal", "zlib", "stored"] = "isal"
    compression_level: int = Field(default=1, ge=0, le=9)
    # How much of a dump may wait, uncompressed, while the compressor catches up (MiB per
    # running backup). Keeps the tool from stalling on a full pipe; 0 turns it off.
    dump_readahead_mib: int = Field(default=32, ge=0, le=256)
    # Count each table's rows in the dump stream (a backup's ``table_rows``, what restore
    # drills check against). Off only to measure what counting costs (the benchmark).
    count_table_rows: bool = True
    # scrypt work factor (log2 N) of backups encrypted with a passphrase: 18 is what
    # `age -p` writes (256 MiB, about a second); each backup and restore pays it once.
    age_scrypt_log_n: int = Field(default=18, ge=10, le=20)

    # --- tools (a name looked up on PATH, or an absolute path)
    pg_dump_path: str = "pg_dump"
    psql_path: str = "psql"
    mysqldump_path: str = "mysqldump"
    mysql_path: str = "mysql"
    # Where PostgreSQL clients of several major versions are looked for (glob patterns
    # allowed), besides PATH; used when pg_dump_path / psql_path keep their default name.
    pg_client_dirs: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["/usr/lib/postgresql/*/bin"]
    )

    # --- retention
    # Failed backup records (they have no file) are removed once this old.
    retention_failed_days: int = Field(default=30, ge=1)
    # How often every database is swept (besides after each completed backup).
    retention_sweep_seconds: float = Field(default=3600, gt=0)
    # Between sweeps, how often the loop looks at the clock again: a wall clock that
    # jumped (a machine waking up) is noticed within this.
    retention_check_seconds: float = Field(default=60, gt=0)

    # --- metrics and monitoring
    # Bearer token Prometheus presents to GET /metrics; unset: the route does not exist.
    metrics_token: SecretStr | None = None
    # How often the overdue watch looks for scheduled databases without a recent success.
    overdue_check_seconds: float = Field(default=60, gt=0)

    # --- listing
    default_page_size: int = Field(default=100, ge=1)
    max_page_size: int = Field(default=1000, ge=1)

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _blank_token_is_none(cls, value: object) -> object:
        # An empty BACKUP_API_METRICS_TOKEN= leaves /metrics off rather than open to "".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("allowed_db_hosts", "allowed_outbound_hosts", "trusted_proxies", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("pg_client_dirs", mode="before")
    @classmethod
    def _split_dirs(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in re.split(r"[,:]", value) if part.strip()]
        return value

    @field_validator("allowed_db_hosts", "allowed_outbound_hosts")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        for entry in value:
            if "/" in entry:
                ipaddress.ip_network(entry, strict=False)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            ipaddress.ip_network(entry, strict=False)
        return value

    @property
    def running_jobs_per_user(self) -> int:
        if self.max_running_jobs_per_user is not None:
            return self.max_running_jobs_per_user
        return max(1, self.max_concurrent_jobs - 1)

    @property
    def sqlite_path(self) -> Path | None:
        prefix = "sqlite+aiosqlite:///"
        if self.database_url.startswith(prefix):
            rest = self.database_url[len(prefix) :]
            if rest and rest != ":memory:":
                return Path(rest)
        return None

    @property
    def resolved_secrets_dir(self) -> Path:
        if self.secrets_dir is not None:
            return self.secrets_dir
        sqlite_path = self.sqlite_path
        return sqlite_path.parent if sqlite_path is not None else Path("db")


@lru_cache
def get_settings() -> Settings:
    return Settings()

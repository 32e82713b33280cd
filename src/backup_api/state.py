"""What the running service holds: built once in the lifespan (``main``), reached by the
routes through ``deps`` and by the jobs as their one argument."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from backup_api.archiving.launcher import ArchiveProcessLauncher
from backup_api.config import Settings
from backup_api.db import Metadata
from backup_api.dumpers.pgclients import PgClients
from backup_api.events import EventBus
from backup_api.jobs.progress import ProgressBoard
from backup_api.jobs.queue import JobQueue
from backup_api.jobs.records import JobRecords
from backup_api.principals import PrincipalCache
from backup_api.ratelimit import RateLimiter
from backup_api.security import Keys, VerifiedTokens
from backup_api.storage.base import Storage
from backup_api.throttle import LoginThrottle
from backup_api.toolversions import ToolVersions

if TYPE_CHECKING:
    # The jobs import this module: what only the routes use stays out of their imports.
    from backup_api.audit import AuditWriter
    from backup_api.copies.retry import CopyRetrier
    from backup_api.copies.store import CopyStore
    from backup_api.notifications.sender import Notifier
    from backup_api.overdue import OverdueWatch
    from backup_api.retention.sweep import RetentionSweeper
    from backup_api.scheduler import Scheduler
    from backup_api.services.metrics import Metrics
    from backup_api.services.serverprobe import ServerProbe


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    metadata: Metadata
    storage: Storage
    #: Every backup's copies, wherever they are (the local root, the storages).
    copy_store: CopyStore
    keys: Keys
    #: Threads for the short blocking steps of jobs (starting processes, reading /proc).
    executor: ThreadPoolExecutor
    archive_processes: ArchiveProcessLauncher
    pg_clients: PgClients
    tool_versions: ToolVersions
    queue: JobQueue
    records: JobRecords
    throttle: LoginThrottle
    token_creations: RateLimiter
    principals: PrincipalCache
    tokens: VerifiedTokens
    connection_tests: RateLimiter
    retention: RetentionSweeper
    server_probe: ServerProbe
    scheduler: Scheduler
    copy_retrier: CopyRetrier
    #: The service's events (notifications and metrics subscribe; see ``events``).
    events: EventBus
    #: Scheduled databases without a recent success (publishes backup.overdue).
    overdue: OverdueWatch
    #: What GET /metrics renders (its private registry, its sources).
    metrics: Metrics
    #: Stores the audit trail's entries (see ``audit``); the requests reach it through
    #: their ``logcontext``.
    audit: AuditWriter
    #: The notification channels' deliveries and the schedules' heartbeats.
    notifier: Notifier
    #: The age identity each pending restore of a backup encrypted to recipients brought,
    #: by restore id: in this process's memory only (never stored, never queued), taken
    #: by the restore's job when it starts. A restart loses them, and fails those restores.
    restore_identities: dict[int, str] = field(default_factory=dict, repr=False)
    #: The dashboard's sessions signed out before their token expired (token -> its expiry,
    #: epoch seconds): refused from then on. One process serves (see ``cli``), so memory
    #: holds them all; a restart forgets them, as it forgets nothing else that matters:
    #: the cookie was removed from the browser that signed out.
    ended_sessions: dict[str, float] = field(default_factory=dict, repr=False)
    #: The running jobs' live progress (what ``GET`` of a running job and its event
    #: stream show), in memory only.
    progress: ProgressBoard = field(default_factory=ProgressBoard)

"""What the running application holds: built in the lifespan, reached through ``deps``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from backup_api.config import Settings
from backup_api.db import Metadata
from backup_api.dumpers.pgclients import PgClients
from backup_api.jobs import JobContext
from backup_api.principals import PrincipalCache
from backup_api.ratelimit import RateLimiter
from backup_api.retention.sweep import RetentionSweeper
from backup_api.runner import Runner
from backup_api.scheduler import Scheduler
from backup_api.security import Keys, VerifiedTokens
from backup_api.services.serverprobe import ServerProbe
from backup_api.storage.base import Storage
from backup_api.throttle import LoginThrottle
from backup_api.toolversions import ToolVersions


@dataclass
class AppState:
    engine: AsyncEngine
    runner: Runner
    jobs: JobContext
    throttle: LoginThrottle
    token_creations: RateLimiter
    principals: PrincipalCache
    tokens: VerifiedTokens
    tool_versions: ToolVersions
    connection_tests: RateLimiter
    retention: RetentionSweeper
    scheduler: Scheduler

    # What the jobs are built on, the routes use too: one place holds it.
    @property
    def settings(self) -> Settings:
        return self.jobs.settings

    @property
    def metadata(self) -> Metadata:
        return self.jobs.metadata

    @property
    def storage(self) -> Storage:
        return self.jobs.storage

    @property
    def keys(self) -> Keys:
        return self.jobs.keys

    @property
    def executor(self) -> ThreadPoolExecutor:
        return self.jobs.executor

    @property
    def pg_clients(self) -> PgClients:
        return self.jobs.pg_clients

    @property
    def server_probe(self) -> ServerProbe:
        return ServerProbe(self.settings, self.pg_clients, self.tool_versions, self.executor)

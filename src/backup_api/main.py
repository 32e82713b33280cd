"""The application factory: routers, error handlers, lifespan (keys, migrations, the job
engine)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI

from backup_api import logs, migrate, openapi
from backup_api.audit import AuditWriter
from backup_api.clock import Clock, SystemClock
from backup_api.config import Settings, get_settings
from backup_api.copies.retry import CopyRetrier
from backup_api.copies.store import CopyStore
from backup_api.dashboard import routes as dashboard
from backup_api.db import Metadata, create_engine
from backup_api.dumpers.pgclients import PgClients
from backup_api.events import EventBus
from backup_api.exceptions import install_error_handlers
from backup_api.jobs import markers
from backup_api.jobs.drill import DrillFollower
from backup_api.jobs.engine import archive_process_launcher, run_job
from backup_api.jobs.queue import InProcessQueue, Job
from backup_api.jobs.records import JobRecords
from backup_api.jobs.recovery import recover
from backup_api.middleware import RequestGuardMiddleware
from backup_api.notifications.sender import Notifier
from backup_api.overdue import OverdueWatch
from backup_api.principals import PrincipalCache
from backup_api.ratelimit import RateLimiter
from backup_api.retention.sweep import RetentionSweeper
from backup_api.routers import (
    api_tokens,
    audit,
    auth,
    backups,
    databases,
    docs,
    drills,
    health,
    metrics,
    notifications,
    restores,
    retention,
    schedules,
    storages,
    users,
)
from backup_api.scheduler import Scheduler
from backup_api.security import VerifiedTokens, load_keys
from backup_api.services.announcements import JobAnnouncer
from backup_api.services.metrics import Metrics
from backup_api.services.serverprobe import ServerProbe
from backup_api.state import AppState
from backup_api.storage.local import LocalStorage
from backup_api.throttle import LoginThrottle
from backup_api.toolversions import ToolVersions

DESCRIPTION = """
Backups of PostgreSQL and MySQL/MariaDB databases: `pg_dump` / `mysqldump` run in the
background, the dump is streamed into a ZIP archive that can be listed, downloaded, verified
and restored. **Authorize** with your e-mail (as `username`) and password, or paste a token
from `POST /auth/login` or a personal API token from `POST /api/tokens`.

Every error is `{"error": "<message>"}`, the message in French; each response below lists
the messages a route sends and when.
"""


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """The application; ``clock`` is what schedules and retention read the time from and
    wait with (tests bring their own)."""
    settings = settings or get_settings()
    time_source: Clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logs.configure(settings.log_level, settings.log_format)
        keys = load_keys(settings)
        engine = create_engine(settings)
        await migrate.upgrade(engine)
        # alembic's fileConfig-free run leaves logging alone, but re-arm redaction anyway.
        logs.install_redaction()
        metadata = Metadata(engine, settings)
        storage = LocalStorage(settings.backup_root)
        executor = ThreadPoolExecutor(
            max_workers=settings.max_concurrent_jobs + 2, thread_name_prefix="backup-io"
        )
        tool_versions = ToolVersions(
            executor, markers.child_env({}, markers.marker("health", settings))
        )

        pg_clients = PgClients(settings, tool_versions)

        async def run(job: Job) -> None:
            await run_job(state, job)

        queue = InProcessQueue(
            settings.max_concurrent_jobs, run, max_per_user=settings.running_jobs_per_user
        )
        copy_store = CopyStore(storage, metadata, settings, keys)
        copy_retrier = CopyRetrier(
            metadata=metadata,
            settings=settings,
            storage=storage,
            copy_store=copy_store,
            clock=time_source,
        )
        bus = EventBus()
        sweeper = RetentionSweeper(
            events=bus,
            settings=settings,
            metadata=metadata,
            copy_store=copy_store,
            queue=queue,
            clock=time_source,
        )
        scheduler = Scheduler(
            clock=time_source, settings=settings, metadata=metadata, storage=storage, events=bus
        )
        notifier = Notifier(metadata=metadata, settings=settings, keys=keys, clock=time_source)
        # Channels hear every event; the subscriber only records deliveries (see Notifier).
        bus.subscribe(notifier.hear)
        state = AppState(
            settings=settings,
            engine=engine,
            metadata=metadata,
            storage=storage,
            copy_store=copy_store,
            keys=keys,
            executor=executor,
            archive_processes=archive_process_launcher(settings),
            pg_clients=pg_clients,
            tool_versions=tool_versions,
            queue=queue,
            records=JobRecords(metadata),
            throttle=LoginThrottle(
                settings.login_max_failures,
                settings.login_window_seconds,
                settings.login_lockout_seconds,
            ),
            token_creations=RateLimiter(settings.api_token_creations_per_hour, 3600),
            principals=PrincipalCache(settings.auth_cache_seconds),
            tokens=VerifiedTokens(keys.jwt_secret),
            connection_tests=RateLimiter(
                settings.connection_tests_per_user, settings.connection_tests_window_seconds
            ),
            retention=sweeper,
            server_probe=ServerProbe(settings, pg_clients, tool_versions, executor),
            scheduler=scheduler,
            copy_retrier=copy_retrier,
            events=bus,
            overdue=OverdueWatch(
                clock=time_source, settings=settings, metadata=metadata, events=bus
            ),
            metrics=Metrics(),
            audit=AuditWriter(metadata),
            notifier=notifier,
        )
        # Each completed backup has its database swept.
        state.records.listeners.append(sweeper.job_event)
        # A backup that ended may need its retry planned.
        state.records.listeners.append(scheduler.job_event)
        # Each backup and restore that ends is announced to the event bus's subscribers.
        state.records.listeners.append(JobAnnouncer(metadata, bus).job_event)
        state.audit.start()
        # Each drill that ends is kept on its backup and announced (drill.passed/failed).
        state.records.listeners.append(DrillFollower(metadata, bus).job_event)
        app.state.backup_api = state
        await recover(state)
        scheduler.start(state.queue)
        sweeper.start()
        copy_retrier.start()
        state.overdue.start()
        notifier.start()
        # Everything built so far lives as long as the process: move it out of the
        # collector's sight, so full collections (over the framework's, the ORM's and the
        # models' objects) stop showing up as request latency spikes.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await scheduler.stop()
            await sweeper.stop()
            await copy_retrier.stop()
            await state.overdue.stop()
            await state.queue.shutdown()
            # After the queue: the jobs that ended meanwhile have their deliveries recorded.
            await notifier.stop()
            await state.audit.close()
            state.archive_processes.close()
            executor.shutdown(wait=True)
            metadata.close()
            await engine.dispose()

    app = FastAPI(
        title="backup-api",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Swagger UI is served from the package (routers/docs.py), ReDoc not at all.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(RequestGuardMiddleware, max_body_bytes=settings.max_body_bytes)
    for router in (
        auth,
        databases,
        schedules,
        retention,
        storages,
        notifications,
        backups,
        restores,
        drills,
        users,
        api_tokens,
        audit,
        health,
        docs,
        dashboard,
    ):
        app.include_router(router.router)
    if settings.metrics_token is not None:
        # Off by default: then the route does not exist at all (404 for every method).
        app.include_router(metrics.router)
    openapi.install(app, settings)
    return app

"""The application factory: routers, error handlers, lifespan (keys, migrations, runner)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from backup_api import logs, migrate
from backup_api.config import Settings, get_settings
from backup_api.db import TransactionRunner, create_engine, create_session_factory
from backup_api.dumpers.pgclients import PgClients
from backup_api.exceptions import install_error_handlers
from backup_api.jobs import (
    JobContext,
    archiver_launcher,
    instance_marker_suffix,
    job_body,
    recover,
)
from backup_api.middleware import RequestGuardMiddleware
from backup_api.principals import PrincipalCache
from backup_api.process import child_env
from backup_api.routers import auth, backups, databases, health, restores, users
from backup_api.runner import Runner
from backup_api.security import VerifiedTokens, load_keys
from backup_api.state import AppState
from backup_api.storage.local import LocalStorage
from backup_api.throttle import LoginThrottle
from backup_api.toolversions import ToolVersions

DESCRIPTION = """
Sauvegarde de bases PostgreSQL et MySQL/MariaDB: `pg_dump` / `mysqldump` tournent en
arrière-plan, le dump est compressé en flux dans une archive ZIP, conservée, téléchargeable
et restaurable. Authentifiez-vous avec `/auth/login` puis le bouton **Authorize**.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logs.configure(settings.log_level)
        keys = load_keys(settings)
        engine = create_engine(settings)
        await migrate.upgrade(engine)
        # alembic's fileConfig-free run leaves logging alone, but re-arm redaction anyway.
        logs.install_redaction()
        sessions = create_session_factory(engine)
        transactions = TransactionRunner(engine, settings)
        storage = LocalStorage(settings.backup_root)
        executor = ThreadPoolExecutor(
            max_workers=settings.max_concurrent_jobs + 2, thread_name_prefix="backup-io"
        )
        tool_versions = ToolVersions(
            executor, child_env({}, "health" + instance_marker_suffix(settings))
        )
        jobs = JobContext(
            settings=settings,
            sessions=sessions,
            transactions=transactions,
            storage=storage,
            keys=keys,
            executor=executor,
            archivers=archiver_launcher(settings),
            pg_clients=PgClients(settings, tool_versions),
        )
        runner = Runner(settings.max_concurrent_jobs, job_body(jobs))
        app.state.backup_api = AppState(
            engine=engine,
            runner=runner,
            jobs=jobs,
            throttle=LoginThrottle(
                settings.login_max_failures,
                settings.login_window_seconds,
                settings.login_lockout_seconds,
            ),
            principals=PrincipalCache(settings.auth_cache_seconds),
            tokens=VerifiedTokens(keys.jwt_secret),
            tool_versions=tool_versions,
        )
        await recover(jobs, runner)
        # Everything built so far lives as long as the process: move it out of the
        # collector's sight, so full collections (about 90 ms over the framework's, the
        # ORM's and the models' objects) stop showing up as request latency spikes.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await runner.shutdown()
            jobs.archivers.close()
            executor.shutdown(wait=True)
            transactions.close()
            await engine.dispose()

    app = FastAPI(
        title="backup-api",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(RequestGuardMiddleware, max_body_bytes=settings.max_body_bytes)
    for router in (auth, databases, backups, restores, users, health):
        app.include_router(router.router)
    _document_errors_as_400(app)
    return app


def _document_errors_as_400(app: FastAPI) -> None:
    """FastAPI documents a 422 on every route; this API answers 400 instead."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            components = schema.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

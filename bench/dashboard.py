"""The dashboard's pages with 100 databases and 10,000 backups in the metadata (and 10
notification channels, 1,000 deliveries to the first, 10,000 audit entries): the server
time of each page (target: under 200 ms).

    .venv/bin/python -m bench.dashboard [--databases 100] [--backups 10000] [--repeat 20]

The records are written straight into a fresh SQLite metadata database (the service's own
tables, as its migrations make them), then each page is asked for ``--repeat`` times by an
admin (who sees every database, the largest page) through the application in this process:
the time measured is the server's, with no network and no browser.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import Connection, insert

from backup_api.config import Settings
from backup_api.main import create_app
from backup_api.models import (
    AuditEvent,
    Backup,
    Database,
    NotificationAttempt,
    NotificationChannel,
    NotificationDelivery,
    Schedule,
)

TARGET_MS = 200.0
PASSWORD = "motdepasse123"


def _fill(connection: Connection, user_id: int, databases: int, backups: int) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    connection.execute(
        insert(Database.__table__),  # type: ignore[attr-defined]
        [
            {
                "name": f"Base {n}",
                "type": "postgresql" if n % 2 else "mysql",
                "host": "db.example.com",
                "port": "5432" if n % 2 else "3306",
                "username": "app",
                "password_encrypted": "",
                "db_name": f"base_{n}",
                "user_id": user_id,
                "created_at": now,
                "updated_at": now,
                "keep_local": True,
            }
            for n in range(1, databases + 1)
        ],
    )
    rows = []
    for n in range(backups):
        database_id = n % databases + 1
        created = now - timedelta(hours=backups - n)
        rows.append(
            {
                "filename": f"base_{database_id}_{n}.zip",
                "filepath": f"/nowhere/base_{database_id}_{n}.zip",
                "size": 1_000_000 + (n * 7919) % 500_000,
                "status": "failed" if n % 37 == 0 else "completed",
                "created_at": created,
                "updated_at": created,
                "started_at": created,
                "finished_at": created + timedelta(seconds=30),
                "user_id": user_id,
                "database_id": database_id,
                "db_type": "postgresql" if database_id % 2 else "mysql",
                "db_name": f"base_{database_id}",
                "database_name": f"Base {database_id}",
                "trigger": "schedule",
                "pinned": False,
                "encrypted": False,
            }
        )
    connection.execute(insert(Backup.__table__), rows)  # type: ignore[attr-defined]
    connection.execute(
        insert(Schedule.__table__),  # type: ignore[attr-defined]
        [
            {"database_id": d, "cron": "0 3 * * *", "timezone": "Europe/Paris", "enabled": True}
            for d in range(1, databases + 1)
        ],
    )


CHANNELS = 10


def _fill_notifications(connection: Connection, user_id: int, entries: int) -> None:
    """Channels of the admin's, ``entries // 10`` delivered events to the first, and
    ``entries`` audit entries (the log's page reads the newest)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    connection.execute(
        insert(NotificationChannel.__table__),  # type: ignore[attr-defined]
        [
            {
                "user_id": user_id,
                "name": f"Canal {n}",
                "type": "webhook",
                "url_encrypted": "",
                "url_masked": "https://hooks.example.com/***",
                "secret_encrypted": "",
                "events": '["backup.completed", "backup.failed"]',
                "scope": "own",
                "enabled": True,
                "created_at": now,
                "updated_at": now,
            }
            for n in range(1, CHANNELS + 1)
        ],
    )
    deliveries = entries // 10
    connection.execute(
        insert(NotificationDelivery.__table__),  # type: ignore[attr-defined]
        [
            {
                "channel_id": 1,
                "event_id": f"msg_{n}",
                "event_type": "backup.completed",
                "body": "{}",
                "status": "delivered",
                "attempts": 1,
                "created_at": now - timedelta(minutes=deliveries - n),
                "updated_at": now - timedelta(minutes=deliveries - n),
            }
            for n in range(deliveries)
        ],
    )
    connection.execute(
        insert(NotificationAttempt.__table__),  # type: ignore[attr-defined]
        [
            {
                "delivery_id": n + 1,
                "channel_id": 1,
                "attempt": 1,
                "status_code": 200,
                "at": now - timedelta(minutes=deliveries - n),
            }
            for n in range(deliveries)
        ],
    )
    connection.execute(
        insert(AuditEvent.__table__),  # type: ignore[attr-defined]
        [
            {
                "time": now - timedelta(seconds=entries - n),
                "user_id": user_id,
                "client": "198.51.100.7",
                "action": "backup_download" if n % 3 else "login",
                "target_type": "backup" if n % 3 else None,
                "target_id": n if n % 3 else None,
                "outcome": "success",
                "details": {"via": "dashboard"} if n % 3 == 0 else None,
            }
            for n in range(entries)
        ],
    )


async def _run(args: argparse.Namespace) -> list[tuple[str, float, float]]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{workdir / 'meta.sqlite3'}",
        backup_root=workdir / "backups",
        secrets_dir=workdir / "secrets",
        log_level="warning",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            form = await client.get("/register")
            csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form.text)
            assert csrf is not None
            signed_in = await client.post(
                "/register",
                data={
                    "csrf_token": csrf.group(1),
                    "email": "admin@example.com",
                    "password": PASSWORD,
                    "role": "admin",
                },
            )
            assert signed_in.status_code == 303, signed_in.text
            state = app.state.backup_api
            await state.metadata.write(lambda c: _fill(c, 1, args.databases, args.backups))
            await state.metadata.write(lambda c: _fill_notifications(c, 1, args.audit))
            newest = args.backups  # ids start at 1
            pages = {
                "/ (overview)": "/",
                "/databases/{id}": "/databases/1",
                "/databases/{id}/retention/preview": "/databases/1/retention/preview?keep_daily=7",
                "/backups/{id}": f"/backups/{newest}",
                "/backups/{id}/status": f"/backups/{newest}/status",
                "/backups/{id}/restore": f"/backups/{newest}/restore",
                "/storages": "/storages",
                "/users": "/users",
                "/notifications": "/notifications",
                "/notifications/{id}": "/notifications/1",
                "/audit": "/audit",
                "/audit (filtered)": "/audit?action=login&page=2",
            }
            results = []
            for name, path in pages.items():
                timings = []
                for _ in range(args.repeat + 1):
                    started = time.perf_counter()
                    response = await client.get(path)
                    timings.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, (path, response.text[:300])
                timings = timings[1:]  # the first fills the template cache
                results.append((name, statistics.median(timings), max(timings)))
            return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", type=int, default=100)
    parser.add_argument("--backups", type=int, default=10_000)
    parser.add_argument("--audit", type=int, default=10_000, help="audit entries")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    results = asyncio.run(_run(args))
    print(
        f"{args.databases} databases, {args.backups} backups, {args.audit} audit entries, "
        f"{args.repeat} requests a page"
    )
    print(f"| page | median ms | max ms | under {TARGET_MS:.0f} ms |")
    print("|---|---|---|---|")
    worst = 0.0
    for name, median, highest in results:
        worst = max(worst, median)
        verdict = "yes" if median < TARGET_MS else "NO"
        print(f"| `{name}` | {median:.1f} | {highest:.1f} | {verdict} |")
    return 0 if worst < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())

"""The ``backup-api`` command: serve, migrate, create-admin."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from backup_api.config import get_settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from backup_api.httpprotocol import with_header_timeout
    from backup_api.main import create_app

    settings = get_settings()
    proxies = settings.trusted_proxies
    uvicorn.run(
        create_app(settings),
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        http=with_header_timeout(settings.header_timeout_seconds),
        # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: anyone on
        # the host could then choose the address the login throttle counts and the access
        # log shows. Only the operator's listed proxies are believed.
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies,
        # One process: the job runner lives in it.
        workers=1,
    )
    return 0


async def _migrate() -> None:
    from backup_api import migrate
    from backup_api.db import create_engine

    engine = create_engine(get_settings())
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


async def _create_admin(email: str, password: str) -> str:
    from backup_api import migrate
    from backup_api.db import create_engine, create_session_factory, session_scope
    from backup_api.services import users as users_service

    engine = create_engine(get_settings())
    try:
        await migrate.upgrade(engine)
        async with session_scope(create_session_factory(engine)) as session:
            user = await users_service.create_admin(session=session, email=email, password=password)
            return user.email
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="backup-api", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP API (applies migrations first)")
    serve.add_argument("--host", help="listen address (default: BACKUP_API_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: BACKUP_API_PORT or 3000)")
    commands.add_parser("migrate", help="apply database migrations and exit")
    admin = commands.add_parser(
        "create-admin",
        help="create an admin account (or promote an existing one); the password is read "
        "from BACKUP_API_ADMIN_PASSWORD or prompted, never taken as an argument",
    )
    admin.add_argument("email")
    args = parser.parse_args(argv)

    if args.command == "serve":
        return _serve(args)
    if args.command == "migrate":
        asyncio.run(_migrate())
        print("migrations applied")
        return 0
    password = os.environ.get("BACKUP_API_ADMIN_PASSWORD") or getpass.getpass("Password: ")
    if len(password) < 8:
        print("error: the password must be at least 8 characters long", file=sys.stderr)
        return 2
    try:
        email = asyncio.run(_create_admin(args.email, password))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"admin account ready: {email}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The backup-api command: serve, migrate, create-admin.

Its messages are in English (the API's are in French); failures print one ``error:`` line
and exit with 2 for a usage problem, 1 for anything else, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from pydantic import ValidationError

from backup_api.config import Settings, get_settings

PASSWORD_VARIABLE = "BACKUP_API_ADMIN_PASSWORD"  # noqa: S105 (a variable name)
MIN_PASSWORD = 8
MAX_PASSWORD = 1024

DESCRIPTION = (
    "Self-hosted API that backs up PostgreSQL and MySQL/MariaDB databases. "
    "Settings come from BACKUP_API_* environment variables (see the README)."
)


class CommandError(Exception):
    """A failure to report in one line; ``code`` 2 for bad usage or input, 1 otherwise."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def package_version() -> str:
    try:
        return version("backup-api")
    except PackageNotFoundError:
        return "unknown"


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        # Names and reasons only: the rejected value may be a secret.
        problems = "; ".join(
            f"BACKUP_API_{str(error['loc'][0]).upper()}: {error['msg']}"
            for error in exc.errors()
            if error["loc"]
        )
        raise CommandError(f"invalid settings: {problems}", 2) from None


def _database_failure(exc: Exception, settings: Settings) -> CommandError:
    from sqlalchemy.engine import make_url

    from backup_api.redact import scrub

    password = make_url(settings.database_url).password
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    detail = scrub(lines[0], [str(password)] if password else [])
    return CommandError(f"metadata database (BACKUP_API_DATABASE_URL) unusable: {detail}")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from backup_api.httpprotocol import with_header_timeout
    from backup_api.logs import uvicorn_log_config
    from backup_api.main import create_app

    settings = _settings()
    proxies = settings.trusted_proxies
    uvicorn.run(
        create_app(settings),
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level,
        log_config=uvicorn_log_config(settings.log_format),
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        http=with_header_timeout(settings.header_timeout_seconds),
        # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: anyone on
        # the host could then choose the address the login throttle counts and the access
        # log shows. Only the operator's listed proxies are believed.
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies,
        # One process: the job queue lives in it.
        workers=1,
    )
    return 0


async def _migrate(settings: Settings) -> None:
    from backup_api import migrate
    from backup_api.db import create_engine

    engine = create_engine(settings)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


async def _create_admin(settings: Settings, email: str, password: str) -> str:
    from backup_api import migrate
    from backup_api.db import Metadata, create_engine
    from backup_api.services import users as users_service

    engine = create_engine(settings)
    metadata = Metadata(engine, settings)
    try:
        await migrate.upgrade(engine)
        user = await users_service.create_admin(metadata=metadata, email=email, password=password)
        email_stored: str = user.email
        return email_stored
    finally:
        metadata.close()
        await engine.dispose()


def _admin_email(value: str) -> str:
    from backup_api.models import normalize_email

    try:
        return normalize_email(value)
    except ValueError:
        raise CommandError(f"invalid e-mail address: {value!r}", 2) from None


def _admin_password() -> str:
    password = os.environ.get(PASSWORD_VARIABLE)
    if not password:
        if not sys.stdin.isatty():
            raise CommandError(
                f"{PASSWORD_VARIABLE} is not set and there is no terminal to ask for the password",
                2,
            )
        try:
            password = getpass.getpass("Password: ")
            if getpass.getpass("Password (again): ") != password:
                raise CommandError("the two passwords differ", 2)
        except (EOFError, KeyboardInterrupt):
            raise CommandError("no password given", 2) from None
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise CommandError(
            f"the password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long", 2
        )
    if "\x00" in password:
        raise CommandError("the password must not contain a NUL character", 2)
    return password


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backup-api", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the HTTP API (applies migrations first)",
        description="Run the HTTP API; migrations are applied first.",
    )
    serve.add_argument("--host", help="listen address (default: BACKUP_API_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: BACKUP_API_PORT or 3000)")
    commands.add_parser(
        "migrate",
        help="apply database migrations and exit",
        description="Bring the metadata database's schema up to date, then exit.",
    )
    admin = commands.add_parser(
        "create-admin",
        help="create an admin account, or promote an existing one",
        description=(
            "Create an admin account, or make an existing account admin and set its password. "
            f"The password comes from {PASSWORD_VARIABLE}, or is asked on the terminal; it "
            "is never an argument (arguments show in the process list)."
        ),
    )
    admin.add_argument(
        "email", metavar="EMAIL", help="e-mail address of the account (it logs in with it)"
    )
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        return _serve(args)
    if args.command == "migrate":
        settings = _settings()
        try:
            asyncio.run(_migrate(settings))
        except Exception as exc:
            raise _database_failure(exc, settings) from None
        print("migrations applied")
        return 0
    email = _admin_email(args.email)
    password = _admin_password()
    settings = _settings()
    try:
        email = asyncio.run(_create_admin(settings, email, password))
    except Exception as exc:
        raise _database_failure(exc, settings) from None
    print(f"admin account ready: {email}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except CommandError as exc:
        print(f"backup-api: error: {exc}", file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    raise SystemExit(main())

"""The dumper registry: database ``type`` -> dumper. Adding an engine is one entry here."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backup_api.config import Settings
    from backup_api.dumpers.base import Dumper


def _postgresql(settings: Settings) -> Dumper:
    from backup_api.dumpers.postgresql import PostgreSQLDumper

    return PostgreSQLDumper(settings.pg_dump_path, settings.psql_path)


def _mysql(settings: Settings) -> Dumper:
    from backup_api.dumpers.mysql import MySQLDumper

    return MySQLDumper(settings.mysqldump_path, settings.mysql_path)


DUMPERS: dict[str, Callable[[Settings], Dumper]] = {
    "postgresql": _postgresql,
    "mysql": _mysql,
}


# Other names users give an engine, and the type they are stored as.
ALIASES: dict[str, str] = {"mariadb": "mysql"}


def supported_types() -> list[str]:
    return sorted(DUMPERS)


def accepted_types() -> list[str]:
    """Every ``type`` a request may carry: the supported ones and their aliases."""
    return sorted({*DUMPERS, *ALIASES})


def canonical_type(db_type: str) -> str:
    """The stored name of ``db_type`` (an alias becomes its engine's type)."""
    return ALIASES.get(db_type, db_type)


def get_dumper(db_type: str, settings: Settings) -> Dumper:
    """The dumper for ``db_type``, one of ``DUMPERS``: a caller given a type from outside
    checks it first, and refuses any other with ``exceptions.UnsupportedDatabaseType``."""
    return DUMPERS[db_type](settings)

"""Throwaway PostgreSQL and MariaDB servers for the test-suite and the benchmark.

One module per engine (:mod:`.postgresql`, :mod:`.mariadb`) over what they share
(:mod:`.common`); the names below are the ones callers use.
"""

from tests.support.servers.common import (
    APP_PASSWORD,
    APP_USER,
    RESERVED_PORTS,
    ClientError,
    DbServer,
    ServerStartError,
    mysql_option_value,
    pgpass_escape,
)
from tests.support.servers.mariadb import MariaDBServer, start_mariadb
from tests.support.servers.postgresql import PostgresServer, start_postgresql

__all__ = [
    "APP_PASSWORD",
    "APP_USER",
    "RESERVED_PORTS",
    "ClientError",
    "DbServer",
    "MariaDBServer",
    "PostgresServer",
    "ServerStartError",
    "mysql_option_value",
    "pgpass_escape",
    "start_mariadb",
    "start_postgresql",
]

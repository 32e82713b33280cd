"""Sanity checks for the throwaway database servers in tests/support/servers/."""

from __future__ import annotations

import stat

import pytest

from tests.support.servers import (
    APP_PASSWORD,
    ClientError,
    DbServer,
    MariaDBServer,
    PostgresServer,
    mysql_option_value,
    pgpass_escape,
)


def test_password_escaping() -> None:
    assert APP_PASSWORD == "Pa:ss\\w'o\"rd #1="
    assert pgpass_escape(APP_PASSWORD) == "Pa\\:ss\\\\w'o\"rd #1="
    assert mysql_option_value(APP_PASSWORD) == '"Pa:ss\\\\w\'o\\"rd #1="'


def _roundtrip(server: DbServer, admin_db: str) -> None:
    db = "sanity_check"
    server.drop_database(db)
    server.create_database(db)
    try:
        server.execute(
            "CREATE TABLE items (id integer PRIMARY KEY, name varchar(100), note varchar(100));\n"
            "INSERT INTO items VALUES (1, 'alpha', NULL);\n"
            "INSERT INTO items VALUES (2, 'tab\there', '');\n"
            "INSERT INTO items VALUES (3, 'two\nlines, \"quoted\"', 'x');\n",
            db,
        )
        assert server.query("SELECT id, name, note FROM items ORDER BY id", db) == [
            ("1", "alpha", None),
            ("2", "tab\there", ""),
            ("3", 'two\nlines, "quoted"', "x"),
        ]
        assert server.query("SELECT count(*) FROM items WHERE id > 100", db) == [("0",)]
        assert server.query("SELECT id FROM items WHERE id > 100", db) == []
        with pytest.raises(ClientError, match="no_such_table"):
            server.execute("SELECT * FROM no_such_table", db)
    finally:
        server.drop_database(db)
    assert (db,) not in server.query(
        "SELECT datname FROM pg_database"
        if server.kind == "postgresql"
        else "SELECT schema_name FROM information_schema.schemata",
        admin_db,
    )


def _assert_private(server: DbServer) -> None:
    for path in server.tmpdir.iterdir():
        if path.name.startswith(("pgpass", "client.cnf")):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_postgresql_roundtrip(pg_server: PostgresServer) -> None:
    assert pg_server.port not in (5432, 0)
    _roundtrip(pg_server, "postgres")
    _assert_private(pg_server)


def test_postgresql_password_auth(pg_server: PostgresServer) -> None:
    # The right password works over TCP ...
    assert pg_server.query("SELECT current_user", "postgres") == [("backup_user",)]
    # ... via SCRAM, the only method pg_hba.conf allows for TCP ...
    rows = pg_server.query(
        "SELECT DISTINCT type, auth_method FROM pg_hba_file_rules ORDER BY 1, 2", "postgres"
    )
    assert ("host", "scram-sha-256") in rows
    assert all(method == "scram-sha-256" for kind, method in rows if kind == "host")
    # ... and a wrong password is rejected.
    proc = pg_server.run_client("SELECT 1", "postgres", password=APP_PASSWORD + "x")
    assert proc.returncode != 0
    assert "password authentication failed" in proc.stderr


def test_mariadb_roundtrip(mysql_server: MariaDBServer) -> None:
    assert mysql_server.port not in (3306, 0)
    _roundtrip(mysql_server, "mysql")
    _assert_private(mysql_server)


def test_mariadb_password_auth(mysql_server: MariaDBServer) -> None:
    assert mysql_server.query("SELECT CURRENT_USER()", "mysql") == [("backup_user@127.0.0.1",)]
    plugins = mysql_server.query(
        "SELECT DISTINCT plugin FROM mysql.user WHERE user = 'backup_user'", "mysql"
    )
    assert plugins == [("mysql_native_password",)]
    proc = mysql_server.run_client("SELECT 1", "mysql", password=APP_PASSWORD + "x")
    assert proc.returncode != 0
    assert "Access denied for user 'backup_user'" in proc.stderr
    proc = mysql_server.run_client("SELECT 1", "mysql", password="")
    assert proc.returncode != 0
    assert "Access denied for user 'backup_user'" in proc.stderr

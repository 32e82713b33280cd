"""The installed ``backup-api`` command, run as users run it: help, version, and one clear
line with the right exit code for every refusal, never a traceback."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.support.apphelpers import PASSWORD

COMMAND = str(Path(sys.executable).with_name("backup-api"))


def run(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BACKUP_API_")}
    environment.update(
        {
            "BACKUP_API_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'meta.sqlite3'}",
            "BACKUP_API_SECRETS_DIR": str(tmp_path / "secrets"),
            **env,
        }
    )
    return subprocess.run(
        [COMMAND, *args],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        # No controlling terminal and nothing on stdin, as under cron or CI.
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("backup-api: error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return lines[0]


def accounts(tmp_path: Path) -> list[tuple[str, str]]:
    database = tmp_path / "meta.sqlite3"
    if not database.exists():
        return []
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT email, role FROM users").fetchall()


def test_help_describes_the_commands_in_plain_text(tmp_path: Path) -> None:
    result = run("--help", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "``" not in result.stdout
    for command in ("serve", "migrate", "create-admin"):
        assert command in result.stdout
    assert "BACKUP_API_" in result.stdout
    admin = run("create-admin", "--help", tmp_path=tmp_path)
    assert admin.returncode == 0, admin.stderr
    assert "EMAIL" in admin.stdout
    assert "e-mail address of the account" in admin.stdout
    assert "BACKUP_API_ADMIN_PASSWORD" in admin.stdout


def test_version(tmp_path: Path) -> None:
    result = run("--version", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"backup-api {version('backup-api')}"


@pytest.mark.parametrize("email", ["not-an-email", "a@b@c", "ops@"])
def test_create_admin_refuses_a_bad_email_in_one_line(tmp_path: Path, email: str) -> None:
    result = run("create-admin", email, tmp_path=tmp_path, BACKUP_API_ADMIN_PASSWORD=PASSWORD)
    assert result.returncode == 2
    assert one_error_line(result) == f"backup-api: error: invalid e-mail address: {email!r}"
    assert "pydantic" not in result.stderr.lower()
    assert accounts(tmp_path) == []


def test_create_admin_without_terminal_or_password_variable(tmp_path: Path) -> None:
    result = run("create-admin", "ops@example.com", tmp_path=tmp_path)
    assert result.returncode == 2
    line = one_error_line(result)
    assert "BACKUP_API_ADMIN_PASSWORD is not set" in line
    assert "no terminal" in line
    assert "EOFError" not in result.stderr
    assert accounts(tmp_path) == []


def test_create_admin_refuses_a_short_password(tmp_path: Path) -> None:
    result = run(
        "create-admin", "ops@example.com", tmp_path=tmp_path, BACKUP_API_ADMIN_PASSWORD="short"
    )
    assert result.returncode == 2
    assert one_error_line(result) == (
        "backup-api: error: the password must be 8 to 1024 characters long"
    )
    assert accounts(tmp_path) == []


def test_create_admin_creates_then_promotes(tmp_path: Path) -> None:
    made = run(
        "create-admin", "Ops@Example.com", tmp_path=tmp_path, BACKUP_API_ADMIN_PASSWORD=PASSWORD
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "admin account ready: ops@example.com"
    assert accounts(tmp_path) == [("ops@example.com", "admin")]


def test_unusable_metadata_database_is_one_line_without_its_password(tmp_path: Path) -> None:
    # Port 1 on the loopback: nothing listens there, the connection is refused at once.
    url = "postgresql+asyncpg://backup:Sup3r-secret-pw@127.0.0.1:1/backup"
    for args in (("migrate",), ("create-admin", "ops@example.com")):
        result = run(
            *args,
            tmp_path=tmp_path,
            BACKUP_API_DATABASE_URL=url,
            BACKUP_API_ADMIN_PASSWORD=PASSWORD,
        )
        assert result.returncode == 1, result.stderr
        line = one_error_line(result)
        assert "BACKUP_API_DATABASE_URL" in line
        assert "Sup3r-secret-pw" not in result.stderr


def test_invalid_setting_names_the_variable_not_its_value(tmp_path: Path) -> None:
    result = run("migrate", tmp_path=tmp_path, BACKUP_API_PORT="not-a-port-4242")
    assert result.returncode == 2
    line = one_error_line(result)
    assert "BACKUP_API_PORT" in line
    assert "not-a-port-4242" not in line

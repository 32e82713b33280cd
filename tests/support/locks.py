"""Holding a table lock from a real client session, to keep a dump blocked at will."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _client_argv(server: Any, database: str, workdir: Path) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "MYSQL"))}
    if server.kind == "postgresql":
        passfile = workdir / "pgpass"
        passfile.write_text("*:*:*:*:" + server.password.replace("\\", "\\\\").replace(":", "\\:"))
        passfile.chmod(0o600)
        env.update({"PGPASSFILE": str(passfile), "PGDATABASE": database})
        argv = [
            "psql",
            "-X",
            "-w",
            "-q",
            "-At",
            "-h",
            server.host,
            "-p",
            str(server.port),
            "-U",
            server.user,
        ]
        return argv, env
    escaped = server.password.replace("\\", "\\\\").replace('"', '\\"')
    option_file = workdir / "my.cnf"
    option_file.write_text(f'[client]\npassword="{escaped}"\n')
    option_file.chmod(0o600)
    env["HOME"] = str(workdir)
    argv = [
        "mysql",
        f"--defaults-extra-file={option_file}",
        "--protocol=TCP",
        f"--host={server.host}",
        f"--port={server.port}",
        f"--user={server.user}",
        f"--database={database}",
        "--batch",
        "--unbuffered",
    ]
    return argv, env


@contextlib.contextmanager
def table_locked(server: Any, database: str, table: str = "items") -> Iterator[None]:
    """Hold an exclusive lock on ``table`` until the block ends: a dump of the database
    blocks (producing no output) until then."""
    with tempfile.TemporaryDirectory(prefix="bk-lock-") as tmp:
        argv, env = _client_argv(server, database, Path(tmp))
        if server.kind == "postgresql":
            statements = f"BEGIN;\nLOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;\nSELECT 'locked';\n"
        else:
            statements = f"LOCK TABLES {table} WRITE;\nSELECT 'locked';\n"
        with _held(argv, env, statements):
            yield


@contextlib.contextmanager
def table_shared_lock(server: Any, database: str, table: str) -> Iterator[None]:
    """Hold a shared lock on ``table`` until the block ends: reading it (a dump) goes on,
    dropping it (a restore) waits."""
    with tempfile.TemporaryDirectory(prefix="bk-lock-") as tmp:
        argv, env = _client_argv(server, database, Path(tmp))
        if server.kind == "postgresql":
            statements = f"BEGIN;\nLOCK TABLE {table} IN ACCESS SHARE MODE;\nSELECT 'locked';\n"
        else:
            statements = f"LOCK TABLES {table} READ;\nSELECT 'locked';\n"
        with _held(argv, env, statements):
            yield


@contextlib.contextmanager
def _held(argv: list[str], env: dict[str, str], statements: str) -> Iterator[None]:
    process = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(statements)
        process.stdin.flush()
        line = process.stdout.readline()
        assert "locked" in line, f"lock not taken: {line!r}"
        yield
    finally:
        if process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


async def wait_until(predicate: Any, timeout: float = 20, interval: float = 0.05) -> Any:
    """Poll ``predicate`` without blocking the event loop (the app runs on it too)."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
    return value


#: This test session's temporary root (set by conftest). Every backup root of the session,
#: hence every job marker, lies under it; other sessions on the same machine use the same
#: job ids ("backup:1@...") under roots of their own, and their processes are not ours.
SESSION_ROOT: str | None = None


def _marked(environ: bytes, marker: str) -> bool:
    for item in environ.split(b"\0"):
        if item.startswith(b"BACKUP_API_JOB=") and marker.encode() in item:
            return SESSION_ROOT is None or SESSION_ROOT.encode() in item
    return False


def tool_processes(name: str, marker: str | None = None) -> list[int]:
    """Pids of running processes that run ``name`` (a tool, or a module run with ``-m``),
    optionally with a job marker of this test session."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            # The tool itself, behind its launchers (setpriv, stdbuf), or a Python module.
            if name not in {Path(a.decode(errors="replace")).name for a in cmdline[:5]}:
                continue
            if marker is not None and not _marked((entry / "environ").read_bytes(), marker):
                continue
            stat = (entry / "stat").read_text()
            if ") Z" in stat:
                continue
        except OSError:
            continue
        pids.append(int(entry.name))
    return pids


def archive_processes(backup_root: Path) -> list[int]:
    """Pids of the processes, other than this one, writing a staged archive under
    ``backup_root``: the archive process of each running backup."""
    root = str(backup_root.resolve())
    own = os.getpid()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            targets = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:
            continue
        if any(t.startswith(root) and t.endswith(".part") for t in targets):
            pids.append(int(entry.name))
    return pids


def job_workdir_contents(workdir: Path) -> list[str]:
    """What a job's directory holds, beside the MySQL clients' plugin directory: that one
    may only hold links to the safe authentication plugins (no file of the job's own)."""
    from backup_api.dumpers.mysql import SAFE_AUTH_PLUGINS

    entries = []
    for entry in sorted(workdir.iterdir()):
        if entry.name == "plugins" and entry.is_dir():
            for plugin in entry.iterdir():
                assert plugin.is_symlink(), plugin
                assert plugin.name in SAFE_AUTH_PLUGINS, plugin
            continue
        entries.append(entry.name)
    return entries

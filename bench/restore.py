"""Restores in the benchmark: the API restore of a database against its engine's own client
run bare, in the same run.

The dump restored is the API backup's own (read out of its ZIP once, so that every
restore loads the same SQL): the bare client loads it from an uncompressed file
(``psql -1 -v ON_ERROR_STOP=1 -f dump.sql``, ``mysql < dump.sql``), the shell pipeline
from the archive (``unzip -p backup.zip | psql ...``), and the API restores the backup
into a registered database. The three alternate in changing order (ABBA), into the same
target database (the dumps drop what they create first). Meanwhile the API's latency is
measured once, with 20 clients listing backups while one API restore runs, and the
service's peak RSS over idle during every API restore.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.servers import DbServer

from bench import report
from bench.client import Api, get_load_while
from bench.measure import percentile
from bench.tools import Credentials

#: API restore / bare client loading an uncompressed file.
MAX_RESTORE_RATIO = 1.10

RESTORE_HEAD = [
    "| restore (plain SQL) | client -f dump.sql | unzip -p \\| client | API restore "
    f"| API / client -f (≤ {MAX_RESTORE_RATIO:g}) "
    f"| peak RSS over idle (≤ {report.MAX_RSS_MIB:g} MiB) |",
    "|---|---|---|---|---|---|",
]


@dataclass
class RestoreResult:
    label: str  # "PostgreSQL 6 MB"
    engine: str
    bare: list[float] = field(default_factory=list)  # the client from the uncompressed file
    piped: list[float] = field(default_factory=list)  # unzip -p | client
    api: list[float] = field(default_factory=list)
    rss_deltas: list[float] = field(default_factory=list)  # MiB
    load: list[float] = field(default_factory=list)  # GET latencies during one API restore

    @property
    def name(self) -> str:
        return f"restore {self.label}"

    @property
    def ratio(self) -> float:
        return statistics.median(self.api) / statistics.median(self.bare)

    @property
    def rss_ok(self) -> bool:
        return max(self.rss_deltas) <= report.MAX_RSS_MIB

    @property
    def load_ok(self) -> bool:
        return bool(self.load) and percentile(self.load, 0.99) < report.MAX_P99_SECONDS

    @property
    def ok(self) -> bool:
        return self.ratio <= MAX_RESTORE_RATIO and self.rss_ok and self.load_ok

    def row(self) -> str:
        return (
            f"| {self.label} | {statistics.median(self.bare):.2f} s "
            f"| {statistics.median(self.piped):.2f} s | {statistics.median(self.api):.2f} s "
            f"| {self.ratio:.2f} ({report.mark(self.ratio <= MAX_RESTORE_RATIO)}) "
            f"| {max(self.rss_deltas):.1f} MiB ({report.mark(self.rss_ok)}) |"
        )

    def latency_line(self) -> str:
        if not self.load:
            return f"- GET /api/backups during an API restore of {self.label}: no request (FAIL)"
        return (
            f"- GET /api/backups during an API restore of {self.label}, 20 clients, "
            f"{len(self.load)} requests: p50 {percentile(self.load, 0.5) * 1e3:.1f} ms, "
            f"p99 {percentile(self.load, 0.99) * 1e3:.1f} ms ({report.mark(self.load_ok)})"
        )


def render(results: list[RestoreResult]) -> list[str]:
    """The restores' table and the lines under it."""
    if not results:
        return []
    return [
        "",
        *RESTORE_HEAD,
        *(result.row() for result in results),
        "",
        *(result.latency_line() for result in results),
    ]


def psql_argv(server: DbServer, target: str) -> list[str]:
    return [
        "psql",
        "-X",
        "-q",
        "-1",
        "-v",
        "ON_ERROR_STOP=1",
        "--no-password",
        "-o",
        "/dev/null",
        "-h",
        server.host,
        "-p",
        str(server.port),
        "-U",
        server.user,
        "-d",
        target,
    ]


def mysql_argv(defaults: Path, target: str) -> list[str]:
    return ["mysql", f"--defaults-extra-file={defaults}", "--batch", "--silent", "--", target]


def timed_shell(command: str, env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", command], env=env, check=True)
    return time.perf_counter() - began


def quote(argv: list[str]) -> str:
    return " ".join(f"'{a}'" for a in argv)


def measure_restores(
    bench_api: Api,
    pid: int,
    server: DbServer,
    label: str,
    backup: dict[str, object],
    target_id: int,
    client: list[str],
    env: dict[str, str],
    workdir: Path,
    repeat: int,
) -> RestoreResult:
    """``client``: the bare client's argv, loading into the target database from stdin."""
    archive = Path(str(backup["filepath"]))
    dump = workdir / f"restore-{server.kind}.sql"
    with dump.open("wb") as out:
        subprocess.run(["unzip", "-p", str(archive)], stdout=out, check=True)
    result = RestoreResult(label, server.kind)
    backup_id = int(str(backup["id"]))

    def bare() -> None:
        result.bare.append(timed_shell(f"{quote(client)} < '{dump}'", env))

    def piped() -> None:
        result.piped.append(timed_shell(f"unzip -p '{archive}' | {quote(client)}", env))

    def api() -> None:
        elapsed, idle, peak = bench_api.restore(backup_id, target_id, pid)
        result.api.append(elapsed)
        result.rss_deltas.append((peak - idle) / 2**20)

    order: list[Callable[[], None]] = [bare, api, piped]
    for turn in range(max(2, repeat)):
        # ABBA: each turn reverses the last one's order, so that none always runs first.
        for step in order if turn % 2 == 0 else reversed(order):
            step()
    # The latency window: one more API restore, not timed, with the load running.
    restore_id = bench_api.start_restore(backup_id, target_id)
    result.load = asyncio.run(
        get_load_while(bench_api, lambda: bench_api.is_pending("restores", restore_id))
    )
    bench_api.wait_restore(restore_id)
    dump.unlink()
    return result


def postgresql_restore(
    api: Api, pid: int, server: DbServer, name: str, label: str, workdir: Path, repeat: int
) -> RestoreResult:
    """Restore the API backup of ``name`` into a database of its own, by the three ways."""
    target = f"{name}_restored"
    server.create_database(target)
    env = Credentials(workdir, server).pg_env()
    backup = api.wait(api.start(api.add_database(server, name)))
    target_id = api.add_database(server, target)
    return measure_restores(
        api,
        pid,
        server,
        label,
        backup,
        target_id,
        psql_argv(server, target),
        env,
        workdir,
        repeat,
    )


def mysql_restore(
    api: Api, pid: int, server: DbServer, name: str, label: str, workdir: Path, repeat: int
) -> RestoreResult:
    target = f"{name}_restored"
    server.create_database(target)
    credentials = Credentials(workdir / "restore-my", server)
    credentials.workdir.mkdir(exist_ok=True)
    defaults = credentials.my_defaults()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYSQL")}
    env["HOME"] = str(credentials.workdir)
    backup = api.wait(api.start(api.add_database(server, name)))
    target_id = api.add_database(server, target)
    return measure_restores(
        api,
        pid,
        server,
        label,
        backup,
        target_id,
        mysql_argv(defaults, target),
        env,
        workdir,
        repeat,
    )

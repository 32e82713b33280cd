"""Benchmark: backups through the API against the dump tools run bare, in the same run.

Starts throwaway PostgreSQL and MariaDB servers (tests/servers.py), fills databases with a
realistic mix, starts `backup-api serve` as its own process, then alternates, several
times: the bare tool to /dev/null, the API backup (POST until `completed`), and the shell
pipeline `pg_dump | zip`. Prints a markdown table of medians and ratios, the server's peak
RSS over its idle RSS, latency under load, listing latency over 10,000 records, and checks
every archive with `unzip -t` and `zipfile.testzip()`.

    .venv/bin/python bench/benchmark.py --sizes 200 800 --mysql-size 400 --repeat 3
    .venv/bin/python bench/benchmark.py --quick     # a small smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.serverproc import ServerProcess  # noqa: E402
from tests.servers import DbServer, start_mariadb, start_postgresql  # noqa: E402

PASSWORD = "bench-password-123"
ROOT_KEY = "db/backups/postgresql"
ROW_BYTES_PG = 190  # plain-SQL bytes per generated row, measured; refined after filling
ROW_BYTES_MY = 200


# ---------------------------------------------------------------------------- data


def fill_postgresql(server: DbServer, name: str, megabytes: float) -> None:
    rows = max(1000, int(megabytes * 1e6 / ROW_BYTES_PG))
    server.create_database(name)
    server.execute(
        f"""
        CREATE TABLE events (
            id bigint PRIMARY KEY,
            account int NOT NULL,
            kind text NOT NULL,
            note text,
            created timestamptz NOT NULL,
            amount numeric(12, 2),
            payload jsonb
        );
        INSERT INTO events
        SELECT g, g % 9973, (ARRAY['login','order','refund','ship'])[1 + g % 4],
               CASE WHEN g % 5 = 0 THEN NULL
                    ELSE 'note ' || md5(g::text) || repeat(' lorem ipsum', g % 6) END,
               timestamptz '2024-01-01 00:00:00+00' + g * interval '17 seconds',
               (g % 100000) / 100.0,
               jsonb_build_object('id', g, 'tags', jsonb_build_array('a', g % 7),
                                  'ref', md5((g * 7)::text))
        FROM generate_series(1, {rows}) AS g;
        CREATE INDEX events_created_idx ON events (created);
        ANALYZE events;
        """,
        name,
    )


def fill_mysql(server: DbServer, name: str, megabytes: float) -> None:
    rows = max(1000, int(megabytes * 1e6 / ROW_BYTES_MY))
    server.create_database(name)
    server.execute(
        f"""
        CREATE TABLE events (
            id BIGINT PRIMARY KEY,
            account INT NOT NULL,
            kind VARCHAR(16) NOT NULL,
            note TEXT,
            created DATETIME NOT NULL,
            amount DECIMAL(12, 2),
            payload JSON,
            INDEX events_created_idx (created)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
        INSERT INTO events
        SELECT seq, seq % 9973, ELT(1 + seq % 4, 'login', 'order', 'refund', 'ship'),
               IF(seq % 5 = 0, NULL, CONCAT('note ', MD5(seq), REPEAT(' lorem ipsum', seq % 6))),
               TIMESTAMPADD(SECOND, seq * 17, '2024-01-01 00:00:00'),
               (seq % 100000) / 100.0,
               JSON_OBJECT('id', seq, 'tags', JSON_ARRAY('a', seq % 7), 'ref', MD5(seq * 7))
        FROM seq_1_to_{rows};
        """,
        name,
    )


# ---------------------------------------------------------------------------- tools


@dataclass
class Credentials:
    workdir: Path
    server: DbServer

    def pg_env(self) -> dict[str, str]:
        passfile = self.workdir / "pgpass"
        if not passfile.exists():
            escaped = self.server.password.replace("\\", "\\\\").replace(":", "\\:")
            passfile.write_text(f"*:*:*:*:{escaped}\n")
            passfile.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGPASSFILE"] = str(passfile)
        return env

    def my_defaults(self) -> Path:
        path = self.workdir / "my.cnf"
        if not path.exists():
            escaped = self.server.password.replace("\\", "\\\\").replace('"', '\\"')
            path.write_text(
                f'[client]\nuser="{self.server.user}"\npassword="{escaped}"\n'
                f"host={self.server.host}\nport={self.server.port}\nprotocol=TCP\n"
            )
            path.chmod(0o600)
        return path


def pg_dump_argv(server: DbServer, name: str) -> list[str]:
    return [
        "pg_dump",
        "--no-password",
        "--format=plain",
        "--clean",
        "--if-exists",
        "--no-owner",
        "--no-privileges",
        "-h",
        server.host,
        "-p",
        str(server.port),
        "-U",
        server.user,
        "-d",
        name,
    ]


def mysqldump_argv(defaults: Path, name: str) -> list[str]:
    return [
        "mysqldump",
        f"--defaults-extra-file={defaults}",
        "--single-transaction",
        "--quick",
        "--hex-blob",
        "--triggers",
        "--no-tablespaces",
        "--skip-dump-date",
        "--",
        name,
    ]


def timed(argv: list[str], env: dict[str, str], shell_tail: str | None = None) -> float:
    began = time.perf_counter()
    if shell_tail is None:
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    else:
        command = " ".join(f"'{a}'" for a in argv) + " | " + shell_tail
        subprocess.run(["bash", "-o", "pipefail", "-c", command], env=env, check=True)
    return time.perf_counter() - began


T = TypeVar("T")


class BusyCpu:
    """CPU seconds the whole machine spent busy (every process) between start and stop.

    The bare dump's own processes (tool and database server) already keep the cores busy;
    this shows how much room is left, and how much the service adds, in the same run.
    """

    @staticmethod
    def now() -> float:
        # The busy fields only: on Linux "guest" time is already inside "user" (summing
        # every field counted it twice), and "steal" is time the hypervisor gave to others.
        times = psutil.cpu_times()
        busy = ("user", "nice", "system", "irq", "softirq")
        return float(sum(getattr(times, name, 0.0) for name in busy))

    def __init__(self) -> None:
        self.samples: list[float] = []

    def measure(self, work: Callable[[], T]) -> T:
        began = self.now()
        result = work()
        self.samples.append(self.now() - began)
        return result

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


class CpuSteadiness:
    """Times the same pure-CPU loop between measurements, with nothing else running.

    On a virtual machine whose host is busy, a core's speed changes from one second to
    the next; every ratio in the report is only as steady as this.
    """

    def __init__(self) -> None:
        self.samples: list[float] = []

    def probe(self) -> None:
        began = time.perf_counter()
        total = 0
        for value in range(2_000_000):
            total += value
        self.samples.append(time.perf_counter() - began)

    def line(self) -> str:
        low, high = min(self.samples), max(self.samples)
        return (
            f"- CPU steadiness: the same pure-Python loop, timed {len(self.samples)} times "
            f"between measurements with nothing else running, took {low * 1e3:.0f} to "
            f"{high * 1e3:.0f} ms (median {statistics.median(self.samples) * 1e3:.0f} ms, "
            f"spread {high / low - 1:.0%}): the cores' speed varies that much during the run"
        )


def cpu_line(
    label: str, bare: list[float], bare_cpu: BusyCpu, api: list[float], api_cpu: BusyCpu
) -> str:
    cores = psutil.cpu_count() or 1
    wall = statistics.median(bare)
    added = api_cpu.median - bare_cpu.median
    # With every core fully used, the backup can take no less than all the CPU work
    # (the bare dump's plus the service's) spread over the cores.
    floor = max(1.0, (bare_cpu.median + added) / cores / wall)
    return (
        f"- {label}: the bare dump kept the machine {bare_cpu.median:.2f} CPU-s busy in "
        f"{wall:.2f} s ({bare_cpu.median / cores / wall:.0%} of {cores} cores); the API "
        f"backup {api_cpu.median:.2f} CPU-s (+{added:.2f} s: the service's work, "
        f"with the benchmark client's). Lowest possible API / bare ratio here: "
        f"{floor:.2f}; measured {statistics.median(api) / wall:.2f}"
    )


def dump_size(argv: list[str], env: dict[str, str]) -> int:
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        total = 0
        while chunk := process.stdout.read(1 << 20):
            total += len(chunk)
    return total


# ---------------------------------------------------------------------------- the API


def service_rss(service: psutil.Process, children: list[psutil.Process]) -> int:
    total = service.memory_info().rss
    for child in children:
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total


def archive_processes(service: psutil.Process) -> list[psutil.Process]:
    found = []
    for child in service.children():
        with contextlib.suppress(psutil.Error):
            if "backup_api.archiving.child" in child.cmdline():
                found.append(child)
    return found


class RssSampler(threading.Thread):
    """Peak RSS of the service plus its archive processes (``backup_api.archiving.child``:
    the one at work and the one waiting for the next job), which do the compression out
    of the service's process and so count as its memory."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        children: list[psutil.Process] = []
        next_scan = 0.0
        while not self.stop_event.is_set():
            now = time.monotonic()
            if now >= next_scan:
                # Listing children reads every process's stat: a few ms, so not every time.
                children = archive_processes(self.process)
                next_scan = now + 0.2
            try:
                self.peak = max(self.peak, service_rss(self.process, children))
            except psutil.Error:
                return
            time.sleep(0.02)

    def stop(self) -> int:
        self.stop_event.set()
        self.join()
        return self.peak


@dataclass
class Api:
    url: str
    meta: Path  # the service's SQLite metadata, watched (read-only) for completions
    token: str = ""
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=60)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def login(self) -> None:
        body = {"email": "bench@example.com", "password": PASSWORD}
        self.client.post("/auth/register", json=body)
        self.token = self.client.post("/auth/login", json=body).json()["token"]

    def add_database(self, server: DbServer, name: str) -> int:
        response = self.client.post(
            "/api/databases",
            headers=self.headers,
            json={
                "name": name,
                "type": server.kind,
                "host": server.host,
                "port": server.port,
                "username": server.user,
                "password": server.password,
                "db_name": name,
            },
        )
        response.raise_for_status()
        database_id: int = response.json()["database"]["id"]
        return database_id

    def start(self, database_id: int) -> int:
        response = self.client.post(f"/api/backups/database/{database_id}", headers=self.headers)
        response.raise_for_status()
        backup_id: int = response.json()["backup"]["id"]
        return backup_id

    def record(self, backup_id: int) -> dict[str, Any]:
        response = self.client.get(f"/api/backups/{backup_id}", headers=self.headers)
        backup: dict[str, Any] = response.json()["backup"]
        return backup

    def status(self, backup_id: int) -> str:
        status: str = self.record(backup_id)["status"]
        return status

    def wait(self, backup_id: int) -> dict[str, Any]:
        """Wait until the backup's record leaves ``pending``, then return it from the API.

        The end is seen in the metadata database itself, every 5 ms, read-only: the moment
        the status is committed is when any client's GET would see it. Polling the API that
        often would time the benchmark's own HTTP traffic (about 1 ms of CPU per request on
        each side, on the same cores as the backup) instead of the backup.
        """
        uri = f"file:{self.meta}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as watcher:
            while True:
                row = watcher.execute(
                    "SELECT status FROM backups WHERE id = ?", (backup_id,)
                ).fetchone()
                if row is not None and row[0] != "pending":
                    break
                time.sleep(0.005)
        backup = self.record(backup_id)
        if backup["status"] != "completed":
            raise RuntimeError(f"backup failed: {backup['error_msg']}")
        return backup

    def backup(self, database_id: int, pid: int) -> tuple[float, dict[str, Any], int, int]:
        service = psutil.Process(pid)
        idle = service_rss(service, archive_processes(service))
        sampler = RssSampler(pid)
        sampler.start()
        began = time.perf_counter()
        backup = self.wait(self.start(database_id))
        elapsed = time.perf_counter() - began
        peak = sampler.stop()
        return elapsed, backup, idle, peak


# ---------------------------------------------------------------------------- load


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


class RawHttpConnection:
    """One keep-alive HTTP/1.1 connection over asyncio streams: the load generator.

    httpx costs 1 to 3 ms of CPU per request; twenty closed-loop httpx clients on a
    2-core machine mostly measure their own queueing. This costs about 0.1 ms, so the
    latencies below are the server's.
    """

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        host_port = url.split("//", 1)[1]
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self.head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.head}"
            "Content-Length: 0\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def latency_under_load(
    api: Api, tiny_db: int, seconds: float
) -> tuple[dict[str, list[float]], int]:
    """20 concurrent clients, each sending its next request as soon as it has an answer,
    alternating listings and backup starts, for ``seconds``. Returns the latencies by kind
    and how many backups were accepted (the rest got 429 from the per-user cap)."""
    results: dict[str, list[float]] = {"list": [], "create": []}
    accepted = 0
    deadline = time.perf_counter() + seconds

    async def worker(first: int) -> None:
        nonlocal accepted
        connection = RawHttpConnection(api.url, api.headers)
        try:
            index = first
            while time.perf_counter() < deadline:
                kind = "list" if index % 2 == 0 else "create"
                index += 1
                began = time.perf_counter()
                if kind == "list":
                    status, body = await connection.request("GET", "/api/backups?limit=50")
                else:
                    status, body = await connection.request(
                        "POST", f"/api/backups/database/{tiny_db}"
                    )
                results[kind].append(time.perf_counter() - began)
                assert status in (200, 202, 429), body
                accepted += status == 202
        finally:
            await connection.close()

    await asyncio.gather(*(worker(first) for first in range(20)))
    return results, accepted


def seed_backup_records(meta: Path, count: int) -> None:
    with sqlite3.connect(meta) as connection:
        user_id = connection.execute("SELECT id FROM users LIMIT 1").fetchone()[0]
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.000000")
        connection.executemany(
            "INSERT INTO backups (filename, filepath, size, status, db_type, db_name, user_id, "
            "created_at, updated_at) VALUES (?, ?, ?, 'completed', 'postgresql', 'seed', ?, ?, ?)",
            [
                (
                    f"seed_{i}.zip",
                    f"db/backups/postgresql/seed_{i}.zip",
                    1000 + i,
                    user_id,
                    now,
                    now,
                )
                for i in range(count)
            ],
        )


def listing_latency(api: Api, count: int, total: int) -> list[float]:
    samples = []
    for index in range(count):
        offset = (index * 997) % max(1, total - 100)
        began = time.perf_counter()
        response = api.client.get(f"/api/backups?limit=100&offset={offset}", headers=api.headers)
        samples.append(time.perf_counter() - began)
        assert response.status_code == 200
    return samples


def check_archive(path: Path) -> None:
    result = subprocess.run(["unzip", "-tq", str(path)], capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"unzip -t failed for {path}: {result.stdout!r}")
    with zipfile.ZipFile(path) as archive:
        if archive.testzip() is not None:
            raise RuntimeError(f"zipfile.testzip failed for {path}")


# ---------------------------------------------------------------------------- report


def mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def machine_line() -> str:
    cpu = "unknown CPU"
    with Path("/proc/cpuinfo").open() as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = psutil.virtual_memory().total / 2**30

    def version(tool: str) -> str:
        return subprocess.run([tool, "--version"], capture_output=True, text=True).stdout.strip()

    return (
        f"{os.cpu_count()} cores, {cpu}, {memory:.0f} GiB RAM; {version('pg_dump')}; "
        f"{version('mysqldump')}; Python {platform.python_version()}"
    )


def mb(value: float) -> str:
    return f"{value / 1e6:.0f} MB"


class Reference:
    """Another revision of the service (``--compare REV``), run beside this one.

    Its code is checked out in a git worktree and put first on ``PYTHONPATH`` (the
    installed dependencies are shared), its service gets its own metadata and archives.
    Each measurement alternates the two, so both see the same machine: on a host whose
    speed drifts, that is what compares two designs.
    """

    def __init__(self, revision: str, workdir: Path, settings: dict[str, str]) -> None:
        self.revision = revision
        self.checkout = workdir / "reference"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(self.checkout), revision],
            check=True,
            capture_output=True,
        )
        self.service = ServerProcess(workdir / "reference-service", log_level="warning", **settings)
        self.service.env["PYTHONPATH"] = str(self.checkout / "src")
        self.service.workdir.mkdir()
        self.service.start()
        assert self.service.process is not None
        self.pid = self.service.process.pid
        self.api = Api(self.service.url, self.service.workdir / "meta.sqlite3")
        self.api.login()
        self.lines: list[str] = []

    def compare(
        self, label: str, bare: list[float], ours: list[float], theirs: list[float]
    ) -> None:
        wall = statistics.median(bare)
        self.lines.append(
            f"- {label}: API backup {statistics.median(theirs):.2f} s with {self.revision} "
            f"({statistics.median(theirs) / wall:.2f}x the bare dump), "
            f"{statistics.median(ours):.2f} s with this code "
            f"({statistics.median(ours) / wall:.2f}x)"
        )

    def stop(self) -> None:
        self.service.stop()
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(self.checkout)],
            check=False,
            capture_output=True,
        )


class ApiSeries:
    """One database's API backups over the repetitions, with the reference's beside them
    (``--compare``): wall times, busy CPU, peak RSS over idle, archive size and paths."""

    def __init__(
        self,
        api: Api,
        pid: int,
        reference: Reference | None,
        server: DbServer,
        name: str,
        archives: list[Path],
    ) -> None:
        self.api = api
        self.pid = pid
        self.reference = reference
        self.archives = archives
        self.database_id = api.add_database(server, name)
        self.ref_id = reference.api.add_database(server, name) if reference else 0
        self.times: list[float] = []
        self.reference_times: list[float] = []
        self.rss_deltas: list[float] = []
        self.cpu = BusyCpu()
        self.size = 0

    def run(self, turn: int) -> None:
        """This code's backup, and the reference's right before or after it, by turns."""
        if turn % 2:
            self._run_reference()
        elapsed, backup, idle, peak = self.cpu.measure(
            partial(self.api.backup, self.database_id, self.pid)
        )
        self.times.append(elapsed)
        self.rss_deltas.append((peak - idle) / 2**20)
        self.size = backup["size"]
        self.archives.append(Path(backup["filepath"]))
        if not turn % 2:
            self._run_reference()

    def _run_reference(self) -> None:
        if self.reference is not None:
            elapsed = self.reference.api.backup(self.ref_id, self.reference.pid)[0]
            self.reference_times.append(elapsed)


def latency_window(
    api: Api, pg: DbServer, big: str, seconds: float
) -> tuple[dict[str, list[float]], int, bool, list[Path]]:
    """Latency while two backups of ``big`` run (registered twice, so both run at once)."""
    tiny = api.add_database(pg, "bench_tiny")
    running = [api.start(api.add_database(pg, big)) for _ in range(2)]
    load, accepted = asyncio.run(latency_under_load(api, tiny, seconds))
    throughout = all(api.status(backup_id) == "pending" for backup_id in running)
    archives = [Path(api.wait(backup_id)["filepath"]) for backup_id in running]
    return load, accepted, throughout, archives


def latency_lines(load: dict[str, list[float]], seconds: float, throughout: bool) -> list[str]:
    lines = []
    for kind, values in load.items():
        label = "GET /api/backups" if kind == "list" else "POST /api/backups/database/{id}"
        lines.append(
            f"- {label} while two backups run, 20 clients, {len(values)} requests in "
            f"{seconds:g} s: p50 {percentile(values, 0.5) * 1e3:.1f} ms, "
            f"p99 {percentile(values, 0.99) * 1e3:.1f} ms "
            f"({mark(throughout and percentile(values, 0.99) < 0.05)})"
        )
    if not throughout:
        lines.append("- (a backup ended before the load did: the latency lines do not count)")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[200.0, 800.0])
    parser.add_argument("--mysql-size", type=float, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--skip-mysql", action="store_true")
    parser.add_argument("--output", type=Path, help="also write the report here")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a service setting for the run, e.g. --setting compression_level=2",
    )
    parser.add_argument(
        "--compare",
        metavar="REV",
        help="also run the service at git revision REV beside this one, alternated",
    )
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeat = [3.0, 6.0], 1
        args.mysql_size = args.mysql_size or 3.0
    mysql_size = args.mysql_size or max(args.sizes) / 2
    load_seconds = 0.5 if args.quick else 3.0
    listing_records = 1000 if args.quick else 10_000

    workdir = Path(tempfile.mkdtemp(prefix="bk-bench-"))
    servers: list[DbServer] = []
    service: ServerProcess | None = None
    reference: Reference | None = None
    lines: list[str] = []
    failures: list[str] = []
    try:
        pg = start_postgresql()
        servers.append(pg)
        my = None if args.skip_mysql else start_mariadb()
        if my is not None:
            servers.append(my)
        print("filling databases...", flush=True)
        pg_names = []
        for size in args.sizes:
            name = f"bench_pg_{int(size)}"
            fill_postgresql(pg, name, size)
            pg_names.append(name)
        pg.create_database("bench_tiny")
        pg.execute("CREATE TABLE t (v int); INSERT INTO t VALUES (1);", "bench_tiny")
        if my is not None:
            fill_mysql(my, "bench_my", mysql_size)

        # The latency window runs two backups of one user at once: past the per-user share
        # (one slot less than the whole) that a service gives by default.
        settings = {"max_running_jobs_per_user": "2"}
        settings.update(item.split("=", 1) for item in args.setting)
        service = ServerProcess(workdir / "service", log_level="warning", **settings)
        service.workdir.mkdir()
        service.start()
        assert service.process is not None
        pid = service.process.pid
        api = Api(service.url, service.workdir / "meta.sqlite3")
        api.login()
        if args.compare:
            reference = Reference(args.compare, workdir, settings)

        pg_creds = Credentials(workdir, pg)
        pg_env = pg_creds.pg_env()
        rows: list[str] = []
        rss_deltas: list[float] = []
        cpu_lines: list[str] = []
        steadiness = CpuSteadiness()
        archives: list[Path] = []
        for name in pg_names:
            series = ApiSeries(api, pid, reference, pg, name, archives)
            sql_bytes = dump_size(pg_dump_argv(pg, name), pg_env)
            bare, piped = [], []
            bare_cpu = BusyCpu()
            zip_path = workdir / "pipeline.zip"
            for turn in range(args.repeat):
                steadiness.probe()
                bare.append(bare_cpu.measure(partial(timed, pg_dump_argv(pg, name), pg_env)))
                series.run(turn)
                zip_path.unlink(missing_ok=True)
                piped.append(timed(pg_dump_argv(pg, name), pg_env, f"zip -q '{zip_path}' -"))
            through_api, api_size = series.times, series.size
            zip_size = zip_path.stat().st_size
            ratio = statistics.median(through_api) / statistics.median(bare)
            speedup = statistics.median(piped) / statistics.median(through_api)
            size_ratio = api_size / zip_size
            delta = max(series.rss_deltas)
            rss_deltas.append(delta)
            cpu_lines.append(
                cpu_line(f"PostgreSQL {mb(sql_bytes)}", bare, bare_cpu, through_api, series.cpu)
            )
            if reference is not None:
                reference.compare(
                    f"PostgreSQL {mb(sql_bytes)}", bare, through_api, series.reference_times
                )
            ok = ratio <= 1.25 and speedup >= 3 and size_ratio <= 1.05 and delta <= 64
            if not ok:
                failures.append(name)
            rows.append(
                f"| PostgreSQL {mb(sql_bytes)} | {statistics.median(bare):.2f} s "
                f"| {statistics.median(through_api):.2f} s | {statistics.median(piped):.2f} s "
                f"| {ratio:.2f} ({mark(ratio <= 1.25)}) | {speedup:.1f}x ({mark(speedup >= 3)}) "
                f"| {mb(api_size)} vs {mb(zip_size)}: {size_ratio:.3f} "
                f"({mark(size_ratio <= 1.05)}) | {delta:.1f} MiB ({mark(delta <= 64)}) |"
            )
        if my is not None:
            my_creds = Credentials(workdir / "my", my)
            my_creds.workdir.mkdir()
            defaults = my_creds.my_defaults()
            env = {k: v for k, v in os.environ.items() if not k.startswith("MYSQL")}
            env["HOME"] = str(my_creds.workdir)
            series = ApiSeries(api, pid, reference, my, "bench_my", archives)
            sql_bytes = dump_size(mysqldump_argv(defaults, "bench_my"), env)
            bare = []
            bare_cpu = BusyCpu()
            for turn in range(args.repeat):
                steadiness.probe()
                bare.append(
                    bare_cpu.measure(partial(timed, mysqldump_argv(defaults, "bench_my"), env))
                )
                series.run(turn)
            through_api, api_size = series.times, series.size
            ratio = statistics.median(through_api) / statistics.median(bare)
            delta = max(series.rss_deltas)
            cpu_lines.append(
                cpu_line(f"MariaDB {mb(sql_bytes)}", bare, bare_cpu, through_api, series.cpu)
            )
            if reference is not None:
                reference.compare(
                    f"MariaDB {mb(sql_bytes)}", bare, through_api, series.reference_times
                )
            if ratio > 1.25 or delta > 64:
                failures.append("mysql")
            rows.append(
                f"| MariaDB {mb(sql_bytes)} | {statistics.median(bare):.2f} s "
                f"| {statistics.median(through_api):.2f} s | - | {ratio:.2f} "
                f"({mark(ratio <= 1.25)}) | - | {mb(api_size)} | {delta:.1f} MiB "
                f"({mark(delta <= 64)}) |"
            )

        # Latency while two big backups run (the largest database, registered twice so
        # that both dumps run at once), measured for the whole load window.
        load, accepted, throughout, loaded = latency_window(api, pg, pg_names[-1], load_seconds)
        archives += loaded
        if reference is not None:
            ref_load, _, ref_throughout, ref_archives = latency_window(
                reference.api, pg, pg_names[-1], load_seconds
            )
            archives += ref_archives
            reference.lines.append(f"- Latency with {reference.revision}, in the same conditions:")
            reference.lines += [
                "  " + line for line in latency_lines(ref_load, load_seconds, ref_throughout)
            ]
        latency_ok = throughout and all(percentile(v, 0.99) < 0.05 for v in load.values())
        if not latency_ok:
            failures.append("latency")

        # Listing over many records.
        seed_backup_records(service.workdir / "meta.sqlite3", listing_records)
        total = listing_records + len(archives) + accepted
        listing = listing_latency(api, 200, total)
        listing_ok = percentile(listing, 0.99) < 0.05
        if not listing_ok:
            failures.append("listing")

        for path in archives:
            check_archive(path)

        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines += [
            f"Benchmark of {stamp}, {args.repeat} alternated runs each, medians.",
            "",
            f"Machine: {machine_line()}",
            "",
            "| database (plain SQL) | dump > /dev/null | API backup | dump \\| zip "
            "| API / bare dump (≤ 1.25) | zip / API (≥ 3x) | archive API vs zip (≤ 1.05) "
            "| peak RSS over idle (≤ 64 MiB) |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"- Peak RSS over idle by database size: "
            f"{', '.join(f'{d:.1f} MiB' for d in rss_deltas)} (does not grow with size)",
            *cpu_lines,
            steadiness.line(),
        ]
        lines += latency_lines(load, load_seconds, throughout)
        lines.append(
            f"- GET /api/backups?limit=100 over {total} records, 200 pages: "
            f"p50 {percentile(listing, 0.5) * 1e3:.1f} ms, "
            f"p99 {percentile(listing, 0.99) * 1e3:.1f} ms ({mark(listing_ok)})"
        )
        lines.append(
            f"- {len(archives)} archives: all pass `unzip -t` and `zipfile.testzip()` (PASS)"
        )
        if reference is not None:
            lines += ["", f"Compared with {reference.revision} (alternated, same run):", ""]
            lines += reference.lines
        report = "\n".join(lines)
        print(report)
        if args.output:
            args.output.write_text(report + "\n")
        print(f"\ntargets missed: {', '.join(failures) or 'none'}")
        return 0
    finally:
        if service is not None:
            service.stop()
        if reference is not None:
            reference.stop()
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

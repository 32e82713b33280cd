"""The benchmark's measurements, one function each: a PostgreSQL database, the same to S3,
the MariaDB database, latency under load, listing over many records.

Every API backup alternates with the bare dump (and with the reference's backup under
``--compare``), so that all of them meet the same machine.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from tests.support.servers import DbServer
from tests.support.servers.seaweedfs import SeaweedFSServer

from bench import report
from bench.client import Api, latency_under_load, listing_latency, seed_backup_records
from bench.measure import BusyCpu, CpuSteadiness
from bench.reference import ApiSeries, Reference
from bench.tools import (
    Archives,
    Credentials,
    archived_dump,
    bare_unkeyed_size,
    check_archive,
    counting_seconds,
    dump_size,
    mysqldump_argv,
    pg_dump_argv,
    timed,
)

#: The database the latency load's backups dump: registered by the scenario, one row.
TINY_DATABASE = "bench_tiny"
LISTING_PAGES = 200


@dataclass
class Bench:
    """What the measurements run against, and what they collect across each other."""

    workdir: Path
    pg: DbServer
    my: DbServer | None  # None: --skip-mysql
    api: Api
    pid: int  # the service's
    reference: Reference | None
    s3: SeaweedFSServer | None = None  # None: --skip-s3
    storage_id: int = 0  # the S3 server's bucket, registered with the service
    steadiness: CpuSteadiness = field(default_factory=CpuSteadiness)
    archives: Archives = field(default_factory=Archives)  # every archive, checked at the end
    labels: dict[str, str] = field(default_factory=dict)  # database: its label in the report
    #: Every encrypted file made, with the age key file that opens it (checked at the end).
    encrypted: list[tuple[Path, Path]] = field(default_factory=list)
    #: The API backups' dumps against the bare tool's, one per database.
    dump_checks: list[report.DumpCheck] = field(default_factory=list)

    def series(self, server: DbServer, name: str) -> ApiSeries:
        return ApiSeries(self.api, self.pid, self.reference, server, name, self.archives)

    def compare(self, label: str, bare: list[float], series: ApiSeries) -> None:
        if self.reference is not None:
            self.reference.compare(label, bare, series.times, series.reference_times)


def postgresql_database(bench: Bench, name: str, repeat: int) -> report.DatabaseResult:
    """Bare ``pg_dump``, the API backup, ``pg_dump | zip`` and ``pg_dump | zip -1``, in an
    order that reverses at every turn (ABBA: none always runs first, on a cold or a warm
    machine)."""
    series = bench.series(bench.pg, name)
    env = Credentials(bench.workdir, bench.pg).pg_env()
    argv = pg_dump_argv(bench.pg, name)
    label = bench.labels[name] = f"PostgreSQL {report.mb(dump_size(argv, env))}"
    bare: list[float] = []
    piped: list[float] = []
    fast_piped: list[float] = []
    bare_cpu = BusyCpu()
    zip_path = bench.workdir / "pipeline.zip"
    fast_zip_path = bench.workdir / "pipeline-1.zip"

    def run_bare() -> None:
        bare.append(bare_cpu.measure(partial(timed, argv, env)))

    def run_zip() -> None:
        zip_path.unlink(missing_ok=True)
        piped.append(timed(argv, env, f"zip -q '{zip_path}' -"))

    def run_fast_zip() -> None:
        fast_zip_path.unlink(missing_ok=True)
        fast_piped.append(timed(argv, env, f"zip -q -1 '{fast_zip_path}' -"))

    for turn in range(repeat):
        bench.steadiness.probe()
        steps = [run_bare, partial(series.run, turn), run_zip, run_fast_zip]
        for step in steps if turn % 2 == 0 else reversed(steps):
            step()
    delta = max(series.rss_deltas)
    bench.compare(label, bare, series)
    row, ok = report.postgresql_row(
        label,
        bare,
        series.times,
        (piped, fast_piped),
        (series.size, zip_path.stat().st_size, fast_zip_path.stat().st_size),
        delta,
    )
    check_dump_size(bench, label, series.last, argv, env)
    cpu = report.cpu_line(label, bare, bare_cpu, series.times, series.cpu)
    counted, counted_ok = counting(bench, argv, env, "postgresql", series, label, repeat)
    return report.DatabaseResult(
        name, "postgresql", row, cpu, delta, ok, counting_line=counted, counting_ok=counted_ok
    )


def counting(
    bench: Bench,
    argv: list[str],
    env: dict[str, str],
    engine: str,
    series: ApiSeries,
    label: str,
    repeat: int,
) -> tuple[str, bool]:
    """The cost of ``table_rows`` on this database, and the counts checked against the
    API backup's own."""
    spent = []
    for _ in range(repeat):
        seconds, tables = counting_seconds(argv, env, engine)
        if tables != series.last.get("table_rows"):
            raise RuntimeError(f"{label}: the backup's table_rows differ from the dump's")
        spent.append(seconds)
    return report.counting_line(label, spent, series.times, target=engine == "postgresql")


def check_dump_size(
    bench: Bench, label: str, backup: dict[str, Any], argv: list[str], env: dict[str, str]
) -> None:
    """What was archived: the API backup's ``dump_size`` is its archive's dump, and that
    dump is the bare tool's, byte for byte but for the random key lines."""
    recorded, archived = archived_dump(Path(backup["filepath"]))
    bare = bare_unkeyed_size(argv, env)
    bench.dump_checks.append(report.DumpCheck(label, backup["dump_size"], recorded, archived, bare))


def postgresql_to_s3(bench: Bench, name: str, repeat: int) -> report.DatabaseResult:
    """Bare ``pg_dump`` and the API backup to the S3 server alone (no local copy), by turns.

    The archive goes from the archive process through the upload process to the S3
    server on this machine, which shares the cores with them; the upload process's memory
    counts with the service's.
    """
    series = ApiSeries(
        bench.api,
        bench.pid,
        None,
        bench.pg,
        name,
        bench.archives,
        keep_local=False,
        storage_ids=[bench.storage_id],
    )
    env = Credentials(bench.workdir, bench.pg).pg_env()
    argv = pg_dump_argv(bench.pg, name)
    label = f"{bench.labels[name]} to S3"
    bare: list[float] = []
    bare_cpu = BusyCpu()
    for turn in range(repeat):
        bench.steadiness.probe()
        # ABBA: the bare dump first at even turns, the API backup first at odd ones.
        if turn % 2:
            series.run(turn)
        bare.append(bare_cpu.measure(partial(timed, argv, env)))
        if not turn % 2:
            series.run(turn)
        copies = [(copy["location"][:5], copy["status"]) for copy in series.last["copies"]]
        if copies != [("s3://", "completed")]:
            raise RuntimeError(f"a backup to S3 alone has the copies {copies}")
    delta = max(series.rss_deltas)
    row, ok = report.api_row(label, bare, series.times, series.size, delta)
    cpu = report.cpu_line(label, bare, bare_cpu, series.times, series.cpu, "and the S3 server's")
    upload = max(series.upload_peaks)
    return report.DatabaseResult(f"{name} to S3", "postgresql-s3", row, cpu, delta, ok, upload)


def mysql_database(bench: Bench, name: str, repeat: int) -> report.DatabaseResult:
    """Bare ``mysqldump`` and the API backup, by turns."""
    server = bench.my
    assert server is not None
    credentials = Credentials(bench.workdir / "my", server)
    credentials.workdir.mkdir()
    defaults = credentials.my_defaults()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYSQL")}
    env["HOME"] = str(credentials.workdir)
    series = bench.series(server, name)
    argv = mysqldump_argv(defaults, name)
    label = bench.labels[name] = f"MariaDB {report.mb(dump_size(argv, env))}"
    bare: list[float] = []
    bare_cpu = BusyCpu()
    for turn in range(repeat):
        bench.steadiness.probe()
        if turn % 2:
            series.run(turn)
        bare.append(bare_cpu.measure(partial(timed, argv, env)))
        if not turn % 2:
            series.run(turn)
    delta = max(series.rss_deltas)
    bench.compare(label, bare, series)
    row, ok = report.api_row(label, bare, series.times, series.size, delta)
    check_dump_size(bench, label, series.last, argv, env)
    cpu = report.cpu_line(label, bare, bare_cpu, series.times, series.cpu)
    counted, counted_ok = counting(bench, argv, env, "mysql", series, label, repeat)
    return report.DatabaseResult(
        "mysql", "mysql", row, cpu, delta, ok, counting_line=counted, counting_ok=counted_ok
    )


def encrypted_database(bench: Bench, name: str, repeat: int) -> report.EncryptionResult:
    """Bare ``pg_dump``, the unencrypted API backup and the one encrypted to a recipient
    (age), by turns: what encryption adds, in the same run."""
    key = bench.workdir / "age-key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    env = Credentials(bench.workdir, bench.pg).pg_env()
    argv = pg_dump_argv(bench.pg, name)
    label = f"PostgreSQL {report.mb(dump_size(argv, env))}"
    plain = bench.api.add_database(bench.pg, name)
    encrypted = bench.api.add_database(bench.pg, name, encryption={"recipients": [recipient]})
    bare: list[float] = []
    plain_times: list[float] = []
    encrypted_times: list[float] = []
    sizes = (0, 0)
    for turn in range(repeat):
        bare.append(timed(argv, env))
        # Alternated order, so that neither always follows the other.
        for database_id in (plain, encrypted) if turn % 2 == 0 else (encrypted, plain):
            elapsed, backup, *_ = bench.api.backup(database_id, bench.pid)
            path = Path(backup["filepath"])
            if database_id == encrypted:
                encrypted_times.append(elapsed)
                bench.encrypted.append((path, key))
                sizes = (sizes[0], backup["size"])
            else:
                plain_times.append(elapsed)
                bench.archives.add(backup["filepath"])
                sizes = (backup["size"], sizes[1])
    return report.EncryptionResult(label, bare, plain_times, encrypted_times, sizes)


def check_encrypted(bench: Bench) -> int:
    """Decrypt each encrypted file with the reference tool and check the ZIP inside."""
    for index, (path, key) in enumerate(bench.encrypted):
        plain = bench.workdir / f"decrypted-{index}.zip"
        subprocess.run(
            ["age", "-d", "-i", str(key), "-o", str(plain), str(path)],
            check=True,
            capture_output=True,
        )
        check_archive(plain)
        plain.unlink()
    return len(bench.encrypted)


def create_tiny_database(server: DbServer) -> None:
    server.create_database(TINY_DATABASE)
    server.execute("CREATE TABLE t (v int); INSERT INTO t VALUES (1);", TINY_DATABASE)


#: The service's cap on one account's pending jobs (its default setting, which the
#: benchmark keeps): each load account starts at most that many backups.
ACTIVE_JOBS_PER_USER = 10
#: Accounts the latency load speaks as: one per client, so every POST can be accepted.
LOAD_USERS = 20


def load_users(api: Api, pg: DbServer) -> list[tuple[Api, int]]:
    """The latency load's accounts, each with the tiny database registered (once)."""
    users = []
    for index in range(LOAD_USERS):
        user = api.other_user(f"bench-load-{index}@example.com")
        users.append((user, user.add_database(pg, TINY_DATABASE)))
    return users


def latency_window(
    api: Api, pg: DbServer, big: str, seconds: float, follow: bool = False
) -> tuple[dict[str, list[float]], int, bool, list[str], int]:
    """Latency while two backups of ``big`` run (registered twice, so both run at once),
    with an event stream (``GET /api/backups/{id}/events``) open on each if ``follow``;
    the last item: the progress events those streams received."""
    users = load_users(api, pg)
    running = [api.start(api.add_database(pg, big)) for _ in range(2)]
    followed = running if follow else []
    load, accepted, events = asyncio.run(
        latency_under_load(users, seconds, ACTIVE_JOBS_PER_USER, api, followed)
    )
    throughout = all(api.status(backup_id) == "pending" for backup_id in running)
    archives = [api.wait(backup_id)["filepath"] for backup_id in running]
    return load, accepted, throughout, archives, events


def latency(bench: Bench, big: str, seconds: float) -> report.LatencyResult:
    """Latency while two big backups run (the largest database, registered twice so that
    both dumps run at once), measured for the whole load window; then the reference's."""
    load, accepted, throughout, archives, _ = latency_window(bench.api, bench.pg, big, seconds)
    for location in archives:
        bench.archives.add(location)
    if bench.reference is not None:
        reference = bench.reference
        theirs, _, their_throughout, their_archives, _ = latency_window(
            reference.api, bench.pg, big, seconds
        )
        for location in their_archives:
            bench.archives.add(location)
        reference.lines.append(f"- Latency with {reference.revision}, in the same conditions:")
        reference.lines += [
            "  " + line for line in report.latency_lines(theirs, seconds, their_throughout)
        ]
    return report.LatencyResult(load, seconds, accepted, throughout)


def latency_followed(bench: Bench, big: str, seconds: float) -> report.LatencyResult:
    """The same window again, with a client following each running backup's event
    stream (as a page or ``curl -N`` watching it live) throughout."""
    load, accepted, throughout, archives, events = latency_window(
        bench.api, bench.pg, big, seconds, follow=True
    )
    for location in archives:
        bench.archives.add(location)
    return report.LatencyResult(load, seconds, accepted, throughout, followers=2, events=events)


def listing(bench: Bench, meta: Path, seeded: int, accepted: int) -> report.ListingResult:
    """Pages of ``GET /api/backups`` over ``seeded`` records written straight into the
    service's metadata ``meta``, beside those the run made."""
    seed_backup_records(meta, seeded)
    total = seeded + len(bench.archives) + accepted
    return report.ListingResult(total, listing_latency(bench.api, LISTING_PAGES, total))

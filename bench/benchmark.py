"""Benchmark: backups through the API against the dump tools run bare, in the same run.

Starts throwaway PostgreSQL and MariaDB servers and an S3 server keeping objects on disk
(tests/support/servers/), fills databases with a realistic mix, starts `backup-api serve`
as its own process, then alternates, several times: the bare tool to /dev/null, the API
backup (POST until `completed`), and the shell pipeline `pg_dump | zip`; then the bare
tool and the API backup to the S3 server alone. Prints a markdown table of medians and
ratios, the server's peak RSS over its idle RSS, latency under load, listing latency over
10,000 records, and checks every archive (those in S3 downloaded first) with `unzip -t`
and `zipfile.testzip()`.

From the repository root:

    .venv/bin/python -m bench.benchmark --sizes 200 800 --mysql-size 400 --repeat 3
    .venv/bin/python -m bench.benchmark --quick     # a small smoke run
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from tests.support.serverproc import ServerProcess
from tests.support.servers import DbServer, start_mariadb, start_postgresql
from tests.support.servers.seaweedfs import start_seaweedfs

from bench import report, restore, scenarios
from bench.client import Api
from bench.data import fill_mysql, fill_postgresql
from bench.reference import Reference


@dataclass
class Options:
    sizes: list[float]  # MB of plain SQL, one PostgreSQL database each
    mysql_size: float | None  # None: --skip-mysql
    s3: bool  # False: --skip-s3
    repeat: int
    load_seconds: float
    listing_records: int
    settings: dict[str, str]  # the service's, without the BACKUP_API_ prefix
    compare: str | None
    output: Path | None
    follow: bool  # each API backup followed by a client of its event stream
    fail: bool = True  # False: --no-fail, a missed target does not change the exit status


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[200.0, 800.0])
    parser.add_argument("--mysql-size", type=float, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--skip-mysql", action="store_true")
    parser.add_argument("--skip-s3", action="store_true", help="no backups to S3")
    parser.add_argument("--output", type=Path, help="also write the report here")
    parser.add_argument(
        "--follow",
        action="store_true",
        help="follow each API backup's event stream (GET /api/backups/{id}/events) while it "
        "runs, as a page watching it would: compare its ratios with a run without",
    )
    parser.add_argument(
        "--no-fail",
        action="store_true",
        help="exit 0 even when a target is missed (for exploration)",
    )
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
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeat = [3.0, 6.0], 1
        args.mysql_size = args.mysql_size or 3.0
    # The latency window runs two backups of one user at once: past the per-user share
    # (one slot less than the whole) that a service gives by default.
    # The bench's account is not an admin: its S3 server, on 127.0.0.1, must be listed.
    settings = {"max_running_jobs_per_user": "2", "allowed_outbound_hosts": "127.0.0.1"}
    settings.update(item.split("=", 1) for item in args.setting)
    return Options(
        sizes=args.sizes,
        mysql_size=None if args.skip_mysql else args.mysql_size or max(args.sizes) / 2,
        s3=not args.skip_s3,
        repeat=args.repeat,
        load_seconds=0.5 if args.quick else 3.0,
        listing_records=1000 if args.quick else 10_000,
        settings=settings,
        compare=args.compare,
        output=args.output,
        follow=args.follow,
        fail=not args.no_fail,
    )


def postgresql_names(options: Options) -> list[str]:
    return [f"bench_pg_{int(size)}" for size in options.sizes]


def fill_databases(options: Options, pg: DbServer, my: DbServer | None) -> None:
    print("filling databases...", flush=True)
    for name, size in zip(postgresql_names(options), options.sizes, strict=True):
        fill_postgresql(pg, name, size)
    scenarios.create_tiny_database(pg)
    if my is not None and options.mysql_size is not None:
        fill_mysql(my, "bench_my", options.mysql_size)


def start_service(workdir: Path, settings: dict[str, str]) -> ServerProcess:
    service = ServerProcess(workdir / "service", log_level="warning", **settings)
    service.workdir.mkdir()
    service.start()
    return service


def measure(options: Options, bench: scenarios.Bench, meta: Path) -> report.Report:
    """Every measurement, in the report's order; then every archive is checked."""
    result = report.Report(repeat=options.repeat)
    for name in postgresql_names(options):
        result.databases.append(scenarios.postgresql_database(bench, name, options.repeat))
    if bench.s3 is not None:
        for name in postgresql_names(options):
            result.databases.append(scenarios.postgresql_to_s3(bench, name, options.repeat))
    if bench.my is not None:
        result.databases.append(scenarios.mysql_database(bench, "bench_my", options.repeat))
    big = postgresql_names(options)[-1]
    result.encryption = scenarios.encrypted_database(bench, big, options.repeat)
    result.dump_checks = bench.dump_checks
    result.restores.append(
        restore.postgresql_restore(
            bench.api, bench.pid, bench.pg, big, bench.labels[big], bench.workdir, options.repeat
        )
    )
    if bench.my is not None:
        result.restores.append(
            restore.mysql_restore(
                bench.api,
                bench.pid,
                bench.my,
                "bench_my",
                bench.labels["bench_my"],
                bench.workdir,
                options.repeat,
            )
        )
    result.latency = scenarios.latency(bench, big, options.load_seconds)
    result.latency_followed = scenarios.latency_followed(bench, big, options.load_seconds)
    result.listing = scenarios.listing(
        bench,
        meta,
        options.listing_records,
        result.latency.accepted + result.latency_followed.accepted,
    )
    bench.archives.check(bench.s3, bench.workdir)
    result.encrypted_archives = scenarios.check_encrypted(bench)
    result.steadiness_line = bench.steadiness.line()
    result.followed_events = bench.api.followed_events if bench.api.follow else None
    result.archives = len(bench.archives)
    result.remote_archives = len(bench.archives.remote)
    if bench.reference is not None:
        result.reference_revision = bench.reference.revision
        result.reference_lines = bench.reference.lines
    return result


def publish(result: report.Report, output: Path | None) -> None:
    text = report.render(result)
    print(text)
    if output is not None:
        output.write_text(text + "\n")
    print(f"\ntargets missed: {', '.join(result.failures()) or 'none'}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; non-zero when something broke or a target was missed (unless
    ``--no-fail``: then a missed target is only a FAIL in the report)."""
    options = parse_options(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bk-bench-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        pg = start_postgresql()
        stack.callback(pg.stop)
        my = None
        if options.mysql_size is not None:
            my = start_mariadb()
            stack.callback(my.stop)
        fill_databases(options, pg, my)
        s3 = None
        if options.s3:
            s3 = start_seaweedfs()
            stack.callback(s3.stop)
        service = start_service(workdir, options.settings)
        stack.callback(service.stop)
        assert service.process is not None
        api = Api(service.url, service.workdir / "meta.sqlite3", follow=options.follow)
        api.login()
        reference = None
        if options.compare:
            reference = Reference(options.compare, workdir, options.settings)
            stack.callback(reference.stop)
        bench = scenarios.Bench(workdir, pg, my, api, service.process.pid, reference, s3)
        if s3 is not None:
            bench.storage_id = api.add_storage(s3, s3.make_bucket())
        result = measure(options, bench, service.workdir / "meta.sqlite3")
        publish(result, options.output)
    return 1 if options.fail and result.failures() else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Soak: the service for ``--minutes`` with one-minute schedules, checked all along.

Starts the test servers (tests/support/servers/): a PostgreSQL and a MariaDB holding the
databases backed up, another PostgreSQL holding the service's metadata, and a SeaweedFS
S3 server; then ``backup-api serve`` as its own process. ``--databases`` small databases
(one in four on MariaDB, the second one first) get a schedule ``* * * * *``, a
retention policy (``keep_last`` 3) and two destinations: the local backup root and a
bucket of the S3 server. Clients poll the API the whole time. Once, the metadata
database is restarted (stopped right after a slot fires, while its jobs run); once, the
S3 server is stopped across a slot (two minutes in a run of an hour, scaled for shorter
runs).

Checked continuously, and reported at the end, each with PASS or FAIL:

- every slot ran once (one scheduled backup in its minute) or was counted skipped;
- no backup stayed ``pending`` past its slot's minute, none is at the end;
- failures only where a fault was, each with its reason (not the generic internal
  error); the slot after each fault succeeds for every database;
- retention kept exactly what its preview said, minute after minute;
- the service's RSS (with its children), open descriptors, threads and child processes
  flat from the end of the warm-up (the tenth minute of an hour, scaled) to the last;
- no ``.part`` file, job directory (where a job's tool configuration lives), open
  multipart upload or zombie process left;
- 503 with a French message while the metadata database is away, then recovery by
  itself (the same process); the API's p99 under 50 ms outside that outage.

From the repository root:

    .venv/bin/python -m bench.soak --minutes 60 --databases 20 --output /tmp/soak.md
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
from tests.support.apphelpers import pg_metadata_url
from tests.support.serverproc import ServerProcess
from tests.support.servers import DbServer, start_mariadb, start_postgresql
from tests.support.servers.common import STARTUP_TIMEOUT, client_env, run_command
from tests.support.servers.postgresql import PostgresServer
from tests.support.servers.seaweedfs import SeaweedFSServer, start_seaweedfs

from bench.client import PASSWORD, raise_for_status
from bench.measure import percentile

MAX_P99_SECONDS = 0.05
#: What "flat" allows between the first idle sample after the warm-up and the last one.
RSS_SLACK = (1.10, 8 * 2**20)  # 10 % plus 8 MiB (allocator arenas, caches settling)
FD_SLACK = 4
THREAD_SLACK = 2
#: Seconds into each minute at which the service is sampled "idle": the slot's jobs
#: (small databases) are over by then.
IDLE_SECOND = 45
KEEP_LAST = 3


@dataclass
class Options:
    minutes: float
    databases: int
    output: Path | None
    fail: bool
    scheduler_poll: float


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--databases", type=int, default=20)
    parser.add_argument("--output", type=Path, help="also write the report here")
    parser.add_argument("--no-fail", action="store_true", help="exit 0 even when a check fails")
    parser.add_argument(
        "--scheduler-poll",
        type=float,
        default=5.0,
        help="the service's scheduler_poll_seconds (how soon it notices a recovered database)",
    )
    args = parser.parse_args(argv)
    if args.minutes < 2:
        parser.error("--minutes: at least 2 (a fault's slot, then a slot after it)")
    return Options(args.minutes, args.databases, args.output, not args.no_fail, args.scheduler_poll)


# --------------------------------------------------------------------------- faults


def stop_postgresql(server: PostgresServer) -> None:
    """Stop the server at once (as a crash or a reboot would), keeping its data."""
    run_command(
        [
            str(server.bindir / "pg_ctl"),
            "stop",
            "--pgdata",
            str(server.datadir),
            "--mode=fast",
            "--wait",
        ],
        as_user=server._owner,
        cwd=server.tmpdir,
        timeout=60,
        check=True,
        env=client_env(),
    )


def start_postgresql_again(server: PostgresServer) -> None:
    """Start it again on the same port: the service's URL does not change."""
    run_command(
        [
            str(server.bindir / "pg_ctl"),
            "start",
            "--wait",
            f"--timeout={int(STARTUP_TIMEOUT)}",
            "--pgdata",
            str(server.datadir),
            "--log",
            str(server.logfile),
            "-o",
            f"-p {server.port}",
        ],
        as_user=server._owner,
        cwd=server.tmpdir,
        timeout=STARTUP_TIMEOUT + 15,
        check=True,
        env=client_env(),
    )


class S3Outage:
    """Stops the SeaweedFS server and starts it again, same ports and data."""

    def __init__(self, server: SeaweedFSServer) -> None:
        self.server = server
        assert server.process is not None
        self.argv = psutil.Process(server.process.pid).cmdline()

    def stop(self) -> None:
        process = self.server.process
        assert process is not None
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def start(self) -> None:
        for path in self.server.grpc_sockets():
            path.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WEED_", "AWS_", "S3_"))}
        env["HOME"] = str(self.server.tmpdir)
        with self.server.log_path.open("ab") as log:
            self.server.process = subprocess.Popen(
                self.argv,
                cwd=self.server.tmpdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.server._wait_ready()


# --------------------------------------------------------------------------- watchers


@dataclass
class Sample:
    at: float  # time.time()
    rss: int  # the service and its children
    fds: int
    threads: int
    children: int
    zombies: int


def sample(pid: int) -> Sample:
    service = psutil.Process(pid)
    children = service.children(recursive=True)
    rss = service.memory_info().rss
    zombies = 0
    for child in children:
        with contextlib.suppress(psutil.Error):
            if child.status() == psutil.STATUS_ZOMBIE:
                zombies += 1
            else:
                rss += child.memory_info().rss
    return Sample(
        time.time(), rss, service.num_fds(), service.num_threads(), len(children), zombies
    )


@dataclass
class Poll:
    at: float
    seconds: float
    status: int
    body: str


class Pollers:
    """Clients polling the API (listings, schedules, health) all along, each sending its
    next request a quarter second after the last answer."""

    def __init__(self, url: str, token: str, database_ids: list[int], clients: int = 4) -> None:
        self.url, self.token, self.database_ids = url, token, database_ids
        self.polls: list[Poll] = []
        self.stop_event = threading.Event()
        self.threads = [
            threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(clients)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join()

    def run(self, index: int) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        paths = ["/api/backups?limit=20", "/api/databases"] + [
            f"/api/databases/{i}/schedule" for i in self.database_ids
        ]
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as client:
            turn = index
            while not self.stop_event.is_set():
                path = paths[turn % len(paths)]
                turn += 1
                began = time.perf_counter()
                try:
                    response = client.get(path)
                    status, body = response.status_code, response.text[:300]
                except httpx.HTTPError as exc:
                    status, body = 0, str(exc)
                self.polls.append(Poll(time.time(), time.perf_counter() - began, status, body))
                self.stop_event.wait(0.25)


# --------------------------------------------------------------------------- the run


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"- {self.name}: {self.detail} ({'PASS' if self.ok else 'FAIL'})"


@dataclass
class Registered:
    id: int
    name: str
    kind: str


@dataclass
class Soak:
    options: Options
    workdir: Path
    service: ServerProcess
    meta: PostgresServer
    s3: S3Outage
    bucket: str
    client: httpx.Client
    databases: list[Registered] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    idle: list[Sample] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # seen while running
    # (start, end) of each fault, time.time()
    metadata_outage: tuple[float, float] = (0.0, 0.0)
    s3_outage: tuple[float, float] = (0.0, 0.0)
    outage_answers: list[Poll] = field(default_factory=list)
    previews: dict[int, dict[str, Any]] = field(default_factory=dict)
    retention_rounds: int = 0

    @property
    def pid(self) -> int:
        assert self.service.process is not None
        return self.service.process.pid

    def get(self, path: str) -> Any:
        response = self.client.get(path)
        raise_for_status(response)
        return response.json()

    def backups(self, database_id: int) -> list[dict[str, Any]]:
        backups: list[dict[str, Any]] = self.get(f"/api/backups/database/{database_id}?limit=1000")[
            "backups"
        ]
        return backups

    # -- continuous checks, at each idle moment

    def idle_checks(self, slot: datetime) -> None:
        """Between two slots: nothing pending, retention did what the last preview said,
        and a new preview to compare with after the next slot."""
        self.idle.append(sample(self.pid))
        for database in self.databases:
            backups = self.backups(database.id)
            present = {backup["id"] for backup in backups}
            for backup in backups:
                if backup["status"] == "pending":
                    self.problems.append(
                        f"backup {backup['id']} of {database.name} still pending "
                        f"{IDLE_SECOND} s after the slot of {slot:%H:%M}"
                    )
            previous = self.previews.get(database.id)
            if previous is not None:
                kept = {item["backup_id"] for item in previous["keep"]}
                deleted = {item["backup_id"] for item in previous["delete"]}
                if not kept <= present or deleted & present:
                    self.problems.append(
                        f"retention of {database.name}: preview kept {sorted(kept)} and "
                        f"deleted {sorted(deleted)}, present {sorted(present)}"
                    )
            self.previews[database.id] = self.get(f"/api/databases/{database.id}/retention/preview")
        self.retention_rounds += 1


def create_databases(pg: DbServer, my: DbServer | None, count: int) -> list[tuple[DbServer, str]]:
    made = []
    for index in range(count):
        server = my if my is not None and index % 4 == 1 else pg
        name = f"soak_{index}"
        server.create_database(name)
        server.execute(
            "CREATE TABLE items (id int PRIMARY KEY, note varchar(100));"
            "INSERT INTO items VALUES " + ", ".join(f"({i}, 'item {i}')" for i in range(200)),
            name,
        )
        made.append((server, name))
    return made


def register(soak: Soak, made: list[tuple[DbServer, str]], storage_id: int) -> None:
    for server, name in made:
        response = soak.client.post(
            "/api/databases",
            json={
                "name": name,
                "type": server.kind,
                "host": server.host,
                "port": server.port,
                "username": server.user,
                "password": server.password,
                "db_name": name,
                "keep_local": True,
                "storage_ids": [storage_id],
            },
        )
        raise_for_status(response)
        database_id = response.json()["database"]["id"]
        soak.databases.append(Registered(database_id, name, server.kind))
        raise_for_status(
            soak.client.put(
                f"/api/databases/{database_id}/retention", json={"keep_last": KEEP_LAST}
            )
        )
    for database in soak.databases:
        raise_for_status(
            soak.client.put(
                f"/api/databases/{database.id}/schedule",
                json={"cron": "* * * * *", "timezone": "UTC", "enabled": True},
            )
        )


def next_minute(after: float) -> datetime:
    moment = datetime.fromtimestamp(after, UTC).replace(second=0, microsecond=0)
    return moment + timedelta(minutes=1)


def sleep_until(moment: float) -> None:
    while (left := moment - time.time()) > 0:
        time.sleep(min(left, 0.5))


def sampler(soak: Soak, stop: threading.Event) -> None:
    while not stop.wait(2.0):
        with contextlib.suppress(psutil.Error):
            soak.samples.append(sample(soak.pid))


def metadata_fault(soak: Soak, slot: datetime, pollers: Pollers) -> None:
    """Right after the slot fired (its jobs running), the metadata database goes away for
    a while (scaled: 30 s in an hour's run, at least 8 s), then comes back."""
    sleep_until(slot.timestamp() + 1.5)
    away = max(8.0, 30.0 * soak.options.minutes / 60)
    began = time.time()
    stop_postgresql(soak.meta)
    time.sleep(away)
    start_postgresql_again(soak.meta)
    # The API recovers by itself: the same process answers again.
    deadline = time.time() + 60
    while time.time() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if soak.client.get("/api/databases").status_code == 200:
                break
        time.sleep(0.5)
    soak.metadata_outage = (began, time.time())
    soak.outage_answers = [
        poll for poll in list(pollers.polls) if began <= poll.at <= soak.metadata_outage[1]
    ]


def s3_fault(soak: Soak, slot: datetime) -> None:
    """The S3 server is stopped from before the slot until after it (2 minutes in an
    hour's run, at least 20 s), then started again."""
    away = max(20.0, 120.0 * soak.options.minutes / 60)
    sleep_until(slot.timestamp() - 5)
    began = time.time()
    soak.s3.stop()
    sleep_until(began + away)
    soak.s3.start()
    soak.s3_outage = (began, time.time())


def run(options: Options) -> list[Check]:
    workdir = Path(tempfile.mkdtemp(prefix="bk-soak-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        pg = start_postgresql()
        stack.callback(pg.stop)
        meta = start_postgresql()
        stack.callback(meta.stop)
        my = start_mariadb() if options.databases >= 2 else None
        if my is not None:
            stack.callback(my.stop)
        weed = start_seaweedfs()
        stack.callback(weed.stop)
        bucket = weed.make_bucket("soak")
        made = create_databases(pg, my, options.databases)
        meta.create_database("soak_meta")
        service = ServerProcess(
            workdir / "service",
            pg_metadata_url(meta, "soak_meta"),
            log_level="warning",
            allowed_outbound_hosts="127.0.0.1",
            scheduler_poll_seconds=str(options.scheduler_poll),
            # Scheduled backups that failed are retried a little later, not 10 min on.
            schedule_retry_delay_seconds="20",
        )
        service.workdir.mkdir()
        service.start()
        stack.callback(service.stop)
        client = httpx.Client(base_url=service.url, timeout=30)
        body = {"email": "soak@example.com", "password": PASSWORD}
        raise_for_status(client.post("/auth/register", json=body))
        token = client.post("/auth/login", json=body).json()["token"]
        client.headers["Authorization"] = f"Bearer {token}"
        soak = Soak(options, workdir, service, meta, S3Outage(weed), bucket, client)
        response = client.post(
            "/api/storages",
            json={
                "name": "soak-s3",
                "type": "s3",
                "endpoint": weed.endpoint,
                "region": weed.region,
                "bucket": bucket,
                "prefix": "soak",
                "access_key_id": weed.access_key_id,
                "secret_access_key": weed.secret_access_key,
                "path_style": True,
            },
        )
        raise_for_status(response)
        register(soak, made, response.json()["storage"]["id"])
        checks = watch(soak, weed)
        if options.output is not None and not all(check.ok for check in checks):
            # The service's log goes before the work directory: it says why.
            shutil.copy(service.log, options.output.with_suffix(".service.log"))
        return checks
    raise AssertionError("unreachable")


def watch(soak: Soak, weed: SeaweedFSServer) -> list[Check]:
    options = soak.options
    began = time.time()
    # The first slot far enough ahead that the faults can be set up before theirs.
    first = next_minute(began + 10)
    count = max(2, int(options.minutes))
    slots = [first + timedelta(minutes=i) for i in range(count)]
    # The faults: the metadata at a third of the run, S3 at two thirds, never on the last
    # slot (the one after each must show recovery).
    metadata_slot = slots[min(count - 2, max(0, count // 3))]
    s3_slot = slots[min(count - 2, max(0, 2 * count // 3))]
    warmup = first.timestamp() + 600 * options.minutes / 60
    pollers = Pollers(
        soak.service.url, soak.client.headers["Authorization"][7:], [d.id for d in soak.databases]
    )
    pollers.start()
    stop = threading.Event()
    sampling = threading.Thread(target=sampler, args=(soak, stop), daemon=True)
    sampling.start()
    faults = [
        threading.Thread(target=metadata_fault, args=(soak, metadata_slot, pollers), daemon=True),
        threading.Thread(target=s3_fault, args=(soak, s3_slot), daemon=True),
    ]
    for fault in faults:
        fault.start()
    for slot in slots:
        sleep_until(slot.timestamp() + IDLE_SECOND)
        if slot == metadata_slot:
            # Its fault (and the recovery) is over by then; wait if not.
            faults[0].join()
        soak.idle_checks(slot)
    for fault in faults:
        fault.join()
    # Nothing new starts: the schedules are turned off, the last jobs end.
    for database in soak.databases:
        soak.client.put(
            f"/api/databases/{database.id}/schedule",
            json={"cron": "* * * * *", "timezone": "UTC", "enabled": False},
        )
    deadline = time.time() + 120
    while time.time() < deadline and any(
        b["status"] == "pending" for d in soak.databases for b in soak.backups(d.id)
    ):
        time.sleep(1)
    soak.idle_checks(slots[-1])
    stop.set()
    sampling.join()
    pollers.stop()
    return verdicts(soak, weed, slots, (metadata_slot, s3_slot), warmup, pollers)


def verdicts(
    soak: Soak,
    weed: SeaweedFSServer,
    slots: list[datetime],
    fault_slots: tuple[datetime, datetime],
    warmup: float,
    pollers: Pollers,
) -> list[Check]:
    checks = soak.checks
    every = {d.id: soak.backups(d.id) for d in soak.databases}
    schedules = {
        d.id: soak.get(f"/api/databases/{d.id}/schedule")["schedule"] for d in soak.databases
    }

    # Every slot ran once, or was counted skipped.
    missing, doubled, skipped = [], [], 0
    for database in soak.databases:
        scheduled = [b for b in every[database.id] if b["trigger"] == "schedule"]
        minutes: dict[str, int] = {}
        for backup in scheduled:
            key = backup["created_at"][:16]
            minutes[key] = minutes.get(key, 0) + 1
        skipped += schedules[database.id]["skipped_runs"]
        doubled += [f"{database.name} {k}" for k, n in minutes.items() if n > 1]
        ran = sum(1 for slot in slots if slot.strftime("%Y-%m-%dT%H:%M") in minutes)
        if ran + schedules[database.id]["skipped_runs"] < len(slots):
            missing.append(
                f"{database.name}: {ran} ran, {schedules[database.id]['skipped_runs']} skipped"
            )
    runs = sum(len([b for b in every[d.id] if b["trigger"] == "schedule"]) for d in soak.databases)
    checks.append(
        Check(
            "slots",
            not missing and not doubled,
            f"{len(slots)} slots x {len(soak.databases)} databases: {runs} scheduled backups, "
            f"{skipped} counted skipped"
            + (f"; missing {missing}" if missing else "")
            + (f"; twice in a minute {doubled}" if doubled else ""),
        )
    )

    pending = [b["id"] for backups in every.values() for b in backups if b["status"] == "pending"]
    stuck = [p for p in soak.problems if "pending" in p]
    checks.append(
        Check(
            "pending",
            not pending and not stuck,
            "none at the end, none past its slot's minute"
            if not pending and not stuck
            else f"at the end {pending}; {stuck[:5]}",
        )
    )

    # Failures only where a fault was; the slot after each fault succeeded everywhere.
    windows = [
        (fault_slots[0], soak.metadata_outage),
        (fault_slots[1], soak.s3_outage),
    ]
    unexplained, reasons = [], set()
    for backups in every.values():
        for backup in backups:
            if backup["status"] != "failed":
                continue
            reasons.add((backup["error_msg"] or "")[:120])
            made = datetime.fromisoformat(backup["created_at"]).timestamp()
            # A clear reason: the generic "erreur interne" tells the owner nothing.
            vague = (backup["error_msg"] or "").startswith("erreur interne")
            if vague or not any(
                slot.timestamp() - 10 <= made <= end + 60 for slot, (_, end) in windows
            ):
                unexplained.append(f"{backup['id']}: {backup['error_msg']!r}")
    failed = sum(b["status"] == "failed" for backups in every.values() for b in backups)
    checks.append(
        Check(
            "failures",
            not unexplained,
            f"{failed} failed backups, all during a fault, with their reasons: "
            f"{sorted(reasons)[:4]}"
            if not unexplained
            else f"unexplained: {unexplained[:5]}",
        )
    )
    not_recovered = []
    for slot, (_, end) in windows:
        after = next((s for s in slots if s.timestamp() > end + 5), None)
        if after is None:
            not_recovered.append(f"no slot after the fault of {slot:%H:%M}")
            continue
        key = after.strftime("%Y-%m-%dT%H:%M")
        for database in soak.databases:
            ok = [
                b
                for b in every[database.id]
                if b["trigger"] == "schedule"
                and b["created_at"].startswith(key)
                and b["status"] == "completed"
                and all(c["status"] == "completed" for c in b.get("copies", []))
            ]
            if not ok:
                not_recovered.append(f"{database.name} at {after:%H:%M}")
    checks.append(
        Check(
            "recovery",
            not not_recovered,
            "the slot after each fault completed for every database, on both destinations"
            if not not_recovered
            else f"not completed: {not_recovered[:5]}",
        )
    )

    retention = [p for p in soak.problems if p.startswith("retention")]
    checks.append(
        Check(
            "retention",
            not retention and soak.retention_rounds >= 2,
            f"{soak.retention_rounds} rounds: every backup a preview kept was still there after "
            "the next slot's sweep, none it deleted was"
            if not retention
            else retention[0],
        )
    )

    # Metadata outage: 503 with a French message, then recovery by the same process.
    unavailable = [poll for poll in soak.outage_answers if poll.status == 503]
    french = all('"error"' in poll.body for poll in unavailable)
    others = {poll.status for poll in soak.outage_answers} - {200, 503}
    checks.append(
        Check(
            "metadata restart",
            bool(unavailable)
            and french
            and not others
            and soak.service.process is not None
            and soak.service.process.poll() is None,
            f"{len(unavailable)} answers 503 while it was away"
            f"{' (' + unavailable[0].body[:100] + ')' if unavailable else ''}; "
            f"back after {soak.metadata_outage[1] - soak.metadata_outage[0]:.0f} s, same process"
            + (f"; other statuses {sorted(others)}" if others else ""),
        )
    )

    outage = soak.metadata_outage
    latencies = [
        p.seconds
        for p in pollers.polls
        if p.status == 200 and not (outage[0] <= p.at <= outage[1] + 5)
    ]
    p99 = percentile(latencies, 0.99) if latencies else float("inf")
    p50 = percentile(latencies, 0.5) if latencies else float("inf")
    checks.append(
        Check(
            "API latency",
            p99 < MAX_P99_SECONDS,
            f"{len(latencies)} polls outside the metadata outage: p50 {p50 * 1e3:.1f} ms, "
            f"p99 {p99 * 1e3:.1f} ms",
        )
    )

    # Flat from the warm-up on: the first idle sample after it against the last.
    idle = [s for s in soak.idle if s.at >= warmup]
    if len(idle) >= 2:
        first, last = idle[0], idle[-1]
        flat = (
            last.rss <= first.rss * RSS_SLACK[0] + RSS_SLACK[1]
            and last.fds <= first.fds + FD_SLACK
            and last.threads <= first.threads + THREAD_SLACK
            and last.children <= first.children
        )
        detail = (
            f"{len(idle)} idle samples after the warm-up: RSS {first.rss / 2**20:.0f} -> "
            f"{last.rss / 2**20:.0f} MiB, fds {first.fds} -> {last.fds}, threads "
            f"{first.threads} -> {last.threads}, children {first.children} -> {last.children}"
        )
    else:
        flat, detail = False, f"only {len(idle)} idle samples after the warm-up"
    checks.append(Check("resources", flat, detail))

    # Leftovers.
    parts = [str(p) for p in soak.service.backup_root.rglob("*.part")]
    jobs = soak.service.workdir / "secrets" / ".jobs"
    job_dirs = [str(p) for p in jobs.iterdir()] if jobs.is_dir() else []
    uploads = weed.client().list_multipart_uploads(Bucket=soak.bucket).get("Uploads", [])
    zombies = sample(soak.pid).zombies
    checks.append(
        Check(
            "leftovers",
            not parts and not job_dirs and not uploads and not zombies,
            f"{len(parts)} .part files, {len(job_dirs)} job directories, {len(uploads)} open "
            f"multipart uploads, {zombies} zombies",
        )
    )
    return checks


def report(options: Options, checks: list[Check]) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            f"Soak of {stamp}: {options.minutes:g} minutes, {options.databases} databases, "
            "schedules `* * * * *`, local and S3 destinations.",
            "",
            *(check.line() for check in checks),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    checks = run(options)
    text = report(options, checks)
    print(text)
    if options.output is not None:
        options.output.write_text(text + "\n")
    failed = [check.name for check in checks if not check.ok]
    print(f"\nchecks failed: {', '.join(failed) or 'none'}")
    return 1 if failed and options.fail else 0


if __name__ == "__main__":
    raise SystemExit(main())

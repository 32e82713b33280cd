"""The report's wording: table rows, the lines under the table, and the verdicts.

Tests and earlier results rely on this wording (tests/project/test_bench_smoke.py, RESULTS.md);
change it only on purpose.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from bench.measure import BusyCpu, percentile

if TYPE_CHECKING:
    from bench.restore import RestoreResult

# The targets, each printed beside its measure with PASS or FAIL.
MAX_API_RATIO = 1.25  # API backup / bare dump
MIN_ZIP_SPEEDUP = 3.0  # `dump | zip` / API backup
MAX_SIZE_RATIO = 1.05  # API archive / `dump | zip` archive
MAX_RSS_MIB = 64.0  # the service's peak RSS over idle during a backup
MAX_P99_SECONDS = 0.05  # latency under load, and of listing pages
MAX_ENCRYPTED_RATIO = 1.10  # encrypted API backup / unencrypted API backup
MAX_ENCRYPTED_BARE_RATIO = 1.25  # encrypted API backup / bare dump

TABLE_HEAD = [
    "| database (plain SQL) | dump > /dev/null | API backup | dump \\| zip | dump \\| zip -1 "
    f"| API / bare dump (≤ {MAX_API_RATIO:g}) | zip / API (≥ {MIN_ZIP_SPEEDUP:g}x) "
    f"| archive API vs zip (≤ {MAX_SIZE_RATIO:g}) | peak RSS over idle (≤ {MAX_RSS_MIB:g} MiB) |",
    "|---|---|---|---|---|---|---|---|---|",
]


@dataclass
class DumpCheck:
    """What one database's API backup archived, against the bare dump: ``dump_size`` as
    recorded, the ZIP entry's size, and the archived and bare dumps' bytes with their
    random key lines (``\\restrict``) left out."""

    label: str
    dump_size: int
    entry_size: int
    archived: int
    bare: int

    @property
    def ok(self) -> bool:
        return self.dump_size == self.entry_size and self.archived == self.bare

    def line(self) -> str:
        return (
            f"- {self.label}: the API backup's dump_size {self.dump_size} B, its ZIP entry "
            f"{self.entry_size} B; without the key lines, archived {self.archived} B, "
            f"bare dump {self.bare} B ({mark(self.ok)})"
        )


@dataclass
class DatabaseResult:
    """One database's line in the table and under it, and whether it met its targets."""

    name: str  # named among the missed targets
    engine: str
    row: str
    cpu_line: str
    rss_delta: float
    ok: bool
    upload_rss: float = 0.0  # MiB: the upload process's own peak, within rss_delta
    #: What counting its rows (``table_rows``) costs, and whether that met its target.
    counting_line: str = ""
    counting_ok: bool = True


@dataclass
class LatencyResult:
    load: dict[str, list[float]]
    seconds: float
    accepted: int  # backups the load's POSTs started (the others got 429)
    throughout: bool  # both big backups still ran when the load ended
    followers: int = 0  # event streams open on the running backups meanwhile
    events: int = 0  # the progress events they received

    @property
    def ok(self) -> bool:
        # A refusal means the window timed the 429 path again, not the accepting one.
        return (
            self.throughout
            and self.events >= self.followers
            and not self.load.get("refused")
            and all(
                percentile(values, 0.99) < MAX_P99_SECONDS
                for kind, values in self.load.items()
                if kind != "refused" and values
            )
        )


@dataclass
class ListingResult:
    records: int
    samples: list[float]

    @property
    def ok(self) -> bool:
        return percentile(self.samples, 0.99) < MAX_P99_SECONDS


@dataclass
class EncryptionResult:
    """The largest PostgreSQL database backed up encrypted (age, to a recipient), beside
    the unencrypted API backup and the bare dump, by turns."""

    label: str
    bare: list[float]
    plain: list[float]
    encrypted: list[float]
    sizes: tuple[int, int]  # the unencrypted archive's and the encrypted file's

    @property
    def ratio(self) -> float:
        return statistics.median(self.encrypted) / statistics.median(self.plain)

    @property
    def bare_ratio(self) -> float:
        return statistics.median(self.encrypted) / statistics.median(self.bare)

    @property
    def ok(self) -> bool:
        return self.ratio <= MAX_ENCRYPTED_RATIO and self.bare_ratio <= MAX_ENCRYPTED_BARE_RATIO

    def line(self) -> str:
        plain_size, encrypted_size = self.sizes
        return (
            f"- {self.label} encrypted (age, to a recipient): "
            f"{statistics.median(self.encrypted):.2f} s, "
            f"{self.ratio:.2f}x the unencrypted API backup "
            f"({statistics.median(self.plain):.2f} s; ≤ {MAX_ENCRYPTED_RATIO:g}: "
            f"{mark(self.ratio <= MAX_ENCRYPTED_RATIO)}), {self.bare_ratio:.2f}x the bare dump "
            f"({statistics.median(self.bare):.2f} s; ≤ {MAX_ENCRYPTED_BARE_RATIO:g}: "
            f"{mark(self.bare_ratio <= MAX_ENCRYPTED_BARE_RATIO)}); "
            f"{mb(encrypted_size)} stored for a {mb(plain_size)} ZIP"
        )


@dataclass
class Report:
    repeat: int
    databases: list[DatabaseResult] = field(default_factory=list)
    steadiness_line: str = ""
    latency: LatencyResult | None = None
    #: The same, with an event stream following each running backup.
    latency_followed: LatencyResult | None = None
    #: With ``--follow``: the progress events the API backups' event streams received.
    followed_events: int | None = None
    listing: ListingResult | None = None
    encryption: EncryptionResult | None = None
    archives: int = 0
    remote_archives: int = 0  # of ``archives``, those read back from the S3 server
    encrypted_archives: int = 0
    reference_revision: str | None = None
    reference_lines: list[str] = field(default_factory=list)
    dump_checks: list[DumpCheck] = field(default_factory=list)
    restores: list[RestoreResult] = field(default_factory=list)

    def failures(self) -> list[str]:
        """The names of the missed targets, in the order of the report."""
        missed = [database.name for database in self.databases if not database.ok]
        missed += [f"{d.name} row counting" for d in self.databases if not d.counting_ok]
        missed += [f"dump size of {check.label}" for check in self.dump_checks if not check.ok]
        missed += [restore.name for restore in self.restores if not restore.ok]
        if self.encryption is not None and not self.encryption.ok:
            missed.append("encryption")
        if self.latency is not None and not self.latency.ok:
            missed.append("latency")
        if self.latency_followed is not None and not self.latency_followed.ok:
            missed.append("latency with event streams")
        if self.listing is not None and not self.listing.ok:
            missed.append("listing")
        return missed


#: PostgreSQL: counting each table's rows may cost at most this share of a backup's time.
COUNTING_TARGET = 0.03


def counting_line(
    label: str, spent: list[float], api: list[float], target: bool
) -> tuple[str, bool]:
    """The row counting's cost over the API backup's median time; a target on
    PostgreSQL, reported as measured on MariaDB."""
    share = statistics.median(spent) / statistics.median(api)
    line = (
        f"- {label}: counting each table's rows in the dump stream (`table_rows`) takes "
        f"{statistics.median(spent) * 1e3:.1f} ms, {share:.1%} of the API backup's time "
        "(counted apart over the same dump, 1 MiB chunks: an upper bound, the archive "
        "process counts while the dump tool runs)"
    )
    if not target:
        return line + " (reported as measured)", True
    ok = share <= COUNTING_TARGET
    return line + f" (target ≤ {COUNTING_TARGET:.0%}: {mark(ok)})", ok


def mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def mb(value: float) -> str:
    return f"{value / 1e6:.0f} MB"


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


def cpu_line(
    label: str,
    bare: list[float],
    bare_cpu: BusyCpu,
    api: list[float],
    api_cpu: BusyCpu,
    also: str = "",
) -> str:
    """``also``: who else worked during the API backups (``"and the S3 server's"``)."""
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
        f"with the benchmark client's{' ' + also if also else ''}). "
        f"Lowest possible API / bare ratio here: "
        f"{floor:.2f}; measured {statistics.median(api) / wall:.2f}"
    )


LOAD_LABELS = {
    "list": "GET /api/backups",
    "create": "POST /api/backups/database/{id} answered 202",
    "refused": "POST /api/backups/database/{id} answered 429",
}


def latency_lines(
    load: dict[str, list[float]], seconds: float, throughout: bool, followed: bool = False
) -> list[str]:
    """One line per kind of request; the POSTs' 202s and 429s apart, each with its count."""
    lines = []
    during = "each followed by an event stream, " if followed else ""
    for kind, values in load.items():
        label = LOAD_LABELS[kind]
        if not values:
            lines.append(
                f"- {label} while two backups run, 20 clients: 0 requests in {seconds:g} s"
            )
            continue
        verdict = throughout and percentile(values, 0.99) < MAX_P99_SECONDS
        if kind == "refused":
            # Every POST should be accepted: the load spreads them over enough accounts.
            verdict = False
        lines.append(
            f"- {label} while two backups run, {during}20 clients, {len(values)} requests in "
            f"{seconds:g} s: p50 {percentile(values, 0.5) * 1e3:.1f} ms, "
            f"p99 {percentile(values, 0.99) * 1e3:.1f} ms ({mark(verdict)})"
        )
    if not throughout:
        lines.append("- (a backup ended before the load did: the latency lines do not count)")
    return lines


def postgresql_row(
    label: str,
    bare: list[float],
    api: list[float],
    piped: tuple[list[float], list[float]],
    sizes: tuple[int, int, int],
    rss_delta: float,
) -> tuple[str, bool]:
    """The table row of a PostgreSQL database, and whether it met every target.

    ``piped`` are the times of ``dump | zip`` and ``dump | zip -1``; ``sizes`` the API's
    archive's and the two pipelines', in bytes. The targets compare with ``zip`` (its
    default level); ``zip -1`` is there for scale.
    """
    api_size, zip_size, fast_zip_size = sizes
    ratio = statistics.median(api) / statistics.median(bare)
    speedup = statistics.median(piped[0]) / statistics.median(api)
    size_ratio = api_size / zip_size
    ratio_ok, speedup_ok = ratio <= MAX_API_RATIO, speedup >= MIN_ZIP_SPEEDUP
    size_ok, rss_ok = size_ratio <= MAX_SIZE_RATIO, rss_delta <= MAX_RSS_MIB
    row = (
        f"| {label} | {statistics.median(bare):.2f} s "
        f"| {statistics.median(api):.2f} s | {statistics.median(piped[0]):.2f} s "
        f"| {statistics.median(piped[1]):.2f} s ({mb(fast_zip_size)}) "
        f"| {ratio:.2f} ({mark(ratio_ok)}) | {speedup:.1f}x ({mark(speedup_ok)}) "
        f"| {mb(api_size)} vs {mb(zip_size)}: {size_ratio:.3f} "
        f"({mark(size_ok)}) | {rss_delta:.1f} MiB ({mark(rss_ok)}) |"
    )
    return row, ratio_ok and speedup_ok and size_ok and rss_ok


def api_row(
    label: str, bare: list[float], api: list[float], api_size: int, rss_delta: float
) -> tuple[str, bool]:
    """The table row of a database without the shell pipeline (MariaDB, and backups to S3),
    and whether it met its targets."""
    ratio = statistics.median(api) / statistics.median(bare)
    ratio_ok, rss_ok = ratio <= MAX_API_RATIO, rss_delta <= MAX_RSS_MIB
    row = (
        f"| {label} | {statistics.median(bare):.2f} s "
        f"| {statistics.median(api):.2f} s | - | - | {ratio:.2f} "
        f"({mark(ratio_ok)}) | - | {mb(api_size)} | {rss_delta:.1f} MiB "
        f"({mark(rss_ok)}) |"
    )
    return row, ratio_ok and rss_ok


def render(report: Report) -> str:
    """The whole report, as markdown."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    pg_deltas = [d.rss_delta for d in report.databases if d.engine == "postgresql"]
    s3_results = [d for d in report.databases if d.engine == "postgresql-s3"]
    s3_deltas = [d.rss_delta for d in s3_results]
    s3_uploads = [d.upload_rss for d in s3_results]
    lines = [
        f"Benchmark of {stamp}, {report.repeat} alternated runs each, medians.",
        "",
        f"Machine: {machine_line()}",
        "",
        *TABLE_HEAD,
        *(database.row for database in report.databases),
        "",
        f"- Peak RSS over idle by database size: "
        f"{', '.join(f'{d:.1f} MiB' for d in pg_deltas)} (does not grow with size)",
        *(
            [
                f"- Peak RSS over idle by database size, to S3 (the upload process counted): "
                f"{', '.join(f'{d:.1f} MiB' for d in s3_deltas)} (does not grow with size); "
                f"the upload process's own peak RSS: "
                f"{', '.join(f'{d:.1f} MiB' for d in s3_uploads)}"
            ]
            if s3_deltas
            else []
        ),
        *(database.cpu_line for database in report.databases),
        *(database.counting_line for database in report.databases if database.counting_line),
        *([] if report.encryption is None else [report.encryption.line()]),
        report.steadiness_line,
    ]
    lines += [check.line() for check in report.dump_checks]
    if report.followed_events is not None:
        lines.append(
            "- Every API backup above was followed by a client of its event stream "
            f"(`--follow`): {report.followed_events} progress events received; compare its "
            "ratios with a run without"
        )
    if report.latency is not None:
        latency = report.latency
        lines += latency_lines(latency.load, latency.seconds, latency.throughout)
    if report.latency_followed is not None:
        followed = report.latency_followed
        lines += latency_lines(followed.load, followed.seconds, followed.throughout, True)
        lines.append(
            f"- Event streams (`GET /api/backups/{{id}}/events`) on the {followed.followers} "
            f"running backups: {followed.events} progress events in {followed.seconds:g} s "
            f"({mark(followed.events >= followed.followers)}: at least one each)"
        )
    if report.listing is not None:
        listing = report.listing
        lines.append(
            f"- GET /api/backups?limit=100 over {listing.records} records, "
            f"{len(listing.samples)} pages: "
            f"p50 {percentile(listing.samples, 0.5) * 1e3:.1f} ms, "
            f"p99 {percentile(listing.samples, 0.99) * 1e3:.1f} ms ({mark(listing.ok)})"
        )
    downloaded = f" ({report.remote_archives} downloaded from S3)" if report.remote_archives else ""
    lines.append(
        f"- {report.archives} archives{downloaded}: all pass `unzip -t` and "
        "`zipfile.testzip()` (PASS)"
    )
    if report.encrypted_archives:
        lines.append(
            f"- {report.encrypted_archives} encrypted files: `age -d -i` gives ZIPs that pass "
            "the same checks (PASS)"
        )
    if report.restores:
        from bench.restore import render as render_restores

        lines += render_restores(report.restores)
    if report.reference_revision is not None:
        lines += ["", f"Compared with {report.reference_revision} (alternated, same run):", ""]
        lines += report.reference_lines
    return "\n".join(lines)

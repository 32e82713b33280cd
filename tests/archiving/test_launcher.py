"""The archive process, both ends: real child processes, real pipes and files."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import re
import signal
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

from backup_api.archiving.archive import ArchiveError, ArchiveResult, Compression
from backup_api.archiving.launcher import (
    ArchiveProcessLauncher,
    extract_archive,
    verify_archive,
    write_archive,
)
from backup_api.archiving.protocol import (
    ArchiveOptions,
    ArchiveProcessCrashedError,
    ExtractOptions,
    ExtractResult,
    VerifyOptions,
    VerifyResult,
)
from backup_api.storage.base import StorageFullError


# The service calls these on its event loop; each test call runs one loop of its own.
def write_archive_in_process(
    dump_fd: int,
    output_fd: int,
    options: ArchiveOptions,
    *,
    on_read: Callable[[int], None],
    launcher: ArchiveProcessLauncher,
) -> ArchiveResult:
    with ThreadPoolExecutor(2) as executor:
        outcome = asyncio.run(
            write_archive(
                dump_fd, [output_fd], options, on_read=on_read, launcher=launcher, executor=executor
            )
        )
    assert outcome.output_errors == (None,)
    return outcome.archive


def extract_in_process(
    archive_fd: int,
    output_fd: int,
    options: ExtractOptions,
    *,
    on_write: Callable[[int], None],
    launcher: ArchiveProcessLauncher,
) -> ExtractResult:
    with ThreadPoolExecutor(2) as executor:
        return asyncio.run(
            extract_archive(
                archive_fd,
                output_fd,
                options,
                on_write=on_write,
                launcher=launcher,
                executor=executor,
            )
        )


def verify_in_process(
    archive_fd: int, options: VerifyOptions, *, launcher: ArchiveProcessLauncher
) -> VerifyResult:
    with ThreadPoolExecutor(2) as executor:
        return asyncio.run(
            verify_archive(archive_fd, options, launcher=launcher, executor=executor)
        )


def sample_sql(size: int) -> bytes:
    line = b"INSERT INTO t VALUES (%d, 'row %d', '2026-11-25 06:55:11');\n"
    out = bytearray()
    index = 0
    while len(out) < size:
        out += line % (index, index * 7919 % 100003)
        index += 1
    return bytes(out[:size])


MYSQLDUMP_HEAD = b"-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu\n"


def dump_sql(size: int) -> bytes:
    """``size`` bytes of SQL as mysqldump writes it: what a restore accepts as such."""
    return MYSQLDUMP_HEAD + sample_sql(size - len(MYSQLDUMP_HEAD))


def options(**overrides: object) -> ArchiveOptions:
    values: dict[str, object] = {
        "entry_name": "shop_20261125_065511.sql",
        "compression": Compression.ISAL,
        "level": 1,
        "date_time": datetime(2026, 11, 25, 6, 55, 11),
        "readahead_mib": 32,
        "nice": 0,
    }
    values.update(overrides)
    return ArchiveOptions(**values)  # type: ignore[arg-type]


def feed(data: bytes, pause: threading.Event | None = None) -> tuple[int, threading.Thread]:
    """A pipe whose read end delivers ``data`` (written by a thread, then closed); with
    ``pause``, the rest waits after the first 64 KiB until the event is set."""
    read_fd, write_fd = os.pipe()
    split = 0 if pause is None else 64 * 1024

    def write() -> None:
        with open(write_fd, "wb", buffering=0) as pipe:
            try:
                pipe.write(data[:split])
                if pause is not None:
                    pause.wait(30)
                pipe.write(data[split:])
            except BrokenPipeError:
                pass

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return read_fd, writer


@pytest.fixture
def output(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    path = tmp_path / "out.zip"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    yield path, fd
    os.close(fd)


@pytest.fixture
def launcher() -> Iterator[ArchiveProcessLauncher]:
    started = ArchiveProcessLauncher(dict(os.environ))
    yield started
    started.close()


def archive(
    data: bytes,
    output_fd: int,
    chosen: ArchiveOptions,
    wrap: Callable[[list[str]], list[str]] = list,
    launcher: ArchiveProcessLauncher | None = None,
) -> tuple[ArchiveResult, list[int]]:
    reads: list[int] = []
    read_fd, writer = feed(data)
    own = launcher is None
    used = ArchiveProcessLauncher(dict(os.environ), wrap) if launcher is None else launcher
    try:
        result = write_archive_in_process(
            read_fd, output_fd, chosen, on_read=reads.append, launcher=used
        )
    finally:
        writer.join(timeout=30)
        if own:
            used.close()
    return result, reads


@pytest.mark.parametrize(
    ("compression", "readahead_mib"),
    [(Compression.ISAL, 32), (Compression.ISAL, 0), (Compression.ZLIB, 1), (Compression.STORED, 2)],
)
def test_round_trip(output: tuple[Path, int], compression: Compression, readahead_mib: int) -> None:
    path, fd = output
    data = sample_sql(5 * 1024 * 1024 + 123)
    result, reads = archive(data, fd, options(compression=compression, readahead_mib=readahead_mib))
    written = path.read_bytes()
    # The result describes the file byte for byte.
    assert result.size == len(written)
    assert result.sha256 == hashlib.sha256(written).hexdigest()
    assert result.uncompressed_size == len(data)
    assert sum(reads) == len(data)
    assert all(count > 0 for count in reads)
    with zipfile.ZipFile(path) as opened:
        assert opened.testzip() is None
        (info,) = opened.infolist()
        assert info.filename == "shop_20261125_065511.sql"
        assert info.date_time == (2026, 11, 25, 6, 55, 10)  # DOS time: 2 s steps
        assert opened.read(info) == data
        expected_method = (
            zipfile.ZIP_STORED if compression is Compression.STORED else zipfile.ZIP_DEFLATED
        )
        assert info.compress_type == expected_method
    if compression is not Compression.STORED:
        assert result.size < len(data) / 3


def test_empty_dump_gives_a_valid_empty_entry(output: tuple[Path, int]) -> None:
    path, fd = output
    result, reads = archive(b"", fd, options())
    assert reads == []
    assert result.uncompressed_size == 0
    with zipfile.ZipFile(path) as opened:
        assert opened.testzip() is None
        assert opened.read("shop_20261125_065511.sql") == b""


def test_full_device_is_reported_as_storage_full() -> None:
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        with pytest.raises(StorageFullError) as caught:
            archive(sample_sql(3 * 1024 * 1024), fd, options())
    finally:
        os.close(fd)
    assert caught.value.errno == errno.ENOSPC
    assert str(caught.value.strerror) == "espace disque insuffisant"


def test_unwritable_output_is_an_os_error(tmp_path: Path) -> None:
    path = tmp_path / "read-only.zip"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError, match="Bad file descriptor") as caught:
            archive(sample_sql(1024 * 1024), fd, options())
    finally:
        os.close(fd)
    assert caught.value.errno == errno.EBADF
    assert not isinstance(caught.value, StorageFullError | ArchiveProcessCrashedError)
    assert path.read_bytes() == b""


def test_a_child_that_dies_silently_is_a_crash(output: tuple[Path, int]) -> None:
    _, fd = output

    def killed_at_start(argv: list[str]) -> list[str]:
        return ["sh", "-c", 'kill -KILL "$$"', "--", *argv]

    # Dead before it got the job ("could not start") or after (its exit status).
    with pytest.raises(ArchiveProcessCrashedError, match=r"le processus d'archivage"):
        archive(sample_sql(1024 * 1024), fd, options(), wrap=killed_at_start)


def test_the_dump_pipe_is_closed_even_when_the_child_cannot_start(
    output: tuple[Path, int], tmp_path: Path
) -> None:
    _, fd = output
    read_fd, write_fd = os.pipe()
    broken = ArchiveProcessLauncher(
        dict(os.environ), wrap=lambda argv: [str(tmp_path / "missing-launcher"), *argv]
    )
    try:
        with pytest.raises(FileNotFoundError):
            write_archive_in_process(
                read_fd, fd, options(), on_read=lambda _: None, launcher=broken
            )
        with pytest.raises(OSError, match="Bad file descriptor") as caught:
            os.fstat(read_fd)
        assert caught.value.errno == errno.EBADF
        # Starting the next waiting process is best effort: it raises nothing (in a job's cleanup it
        # would hide the job's own error), and leaves no process.
        broken.prepare()
        assert archive_children() == []
    finally:
        os.close(write_fd)
        broken.close()


def test_invalid_entry_name_fails_without_writing(output: tuple[Path, int]) -> None:
    path, fd = output
    with pytest.raises(RuntimeError):
        archive(sample_sql(1024), fd, options(entry_name="../escape.sql"))
    assert path.read_bytes() == b""


def archive_children(count: int | None = None) -> list[int]:
    """This process's archive process children (the working ones and the waiting one).

    With ``count``, waits up to 5 s for that many: a child just started may still be inside
    ``exec``, where its command line is empty for a moment after ``Popen`` has returned.
    """
    deadline = time.monotonic() + 5
    while True:
        pids = _archive_children()
        if count is None or len(pids) == count or time.monotonic() > deadline:
            return pids
        time.sleep(0.01)


def _archive_children() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if b"backup_api.archiving.child" in argv and parent == os.getpid() and ") Z" not in stat:
            pids.append(int(entry.name))
    return pids


def children_holding(target: str) -> list[int]:
    """This process's archive children with ``target`` open (a path, or ``pipe:[inode]``
    as ``/proc/<pid>/fd`` shows it)."""
    holders = []
    for pid in archive_children():
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) == target for fd in Path(f"/proc/{pid}/fd").iterdir()):
                holders.append(pid)
    return holders


def writer_of(path: Path) -> int:
    """The child process that has ``path`` open."""
    holders = children_holding(str(path))
    assert holders, f"no archive process has {path} open"
    return holders[0]


def test_the_child_runs_at_the_requested_niceness(
    output: tuple[Path, int], launcher: ArchiveProcessLauncher
) -> None:
    path, fd = output
    seen: list[int] = []
    resume = threading.Event()
    read_fd, writer = feed(sample_sql(256 * 1024), pause=resume)

    def on_read(_: int) -> None:
        if not seen:  # the child has read the first part and waits for the rest
            seen.append(os.getpriority(os.PRIO_PROCESS, writer_of(path)))
            resume.set()

    try:
        write_archive_in_process(read_fd, fd, options(nice=7), on_read=on_read, launcher=launcher)
    finally:
        writer.join(timeout=30)
    assert seen == [max(7, os.getpriority(os.PRIO_PROCESS, 0))]


def test_a_process_is_started_ahead_and_ended_on_close(tmp_path: Path) -> None:
    spawned: list[list[str]] = []

    def counting(argv: list[str]) -> list[str]:
        spawned.append(argv)
        return argv

    launcher = ArchiveProcessLauncher(dict(os.environ), wrap=counting)
    try:
        launcher.prepare()
        assert len(spawned) == 1
        (waiting,) = archive_children(1)
        for index in range(2):
            path = tmp_path / f"{index}.zip"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                result, _ = archive(sample_sql(100_000), fd, options(), launcher=launcher)
            finally:
                os.close(fd)
            assert result.size == path.stat().st_size
            # Each job took the waiting child and left a new one waiting.
            assert len(spawned) == index + 2
        assert waiting not in archive_children(1)  # it did the first job and ended
        assert len(archive_children(1)) == 1
    finally:
        launcher.close()
    assert archive_children() == []


def test_a_waiting_process_that_died_is_replaced(
    output: tuple[Path, int], launcher: ArchiveProcessLauncher
) -> None:
    path, fd = output
    launcher.prepare()
    (waiting,) = archive_children(1)
    os.kill(waiting, signal.SIGKILL)
    for _ in range(100):
        if waiting not in archive_children():
            break
        time.sleep(0.02)
    data = sample_sql(200_000)
    result, reads = archive(data, fd, options(), launcher=launcher)
    assert sum(reads) == len(data) == result.uncompressed_size
    with zipfile.ZipFile(path) as opened:
        assert opened.read("shop_20261125_065511.sql") == data


# ---------------------------------------------------------------------------- restores


class Drain:
    """The restore tool's stdin, as a pipe a thread reads (all of it, or ``limit`` bytes
    before it closes its end, like a tool that fails)."""

    def __init__(self, limit: int | None = None) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.received = bytearray()
        self._limit = limit
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with open(self.read_fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                self.received += chunk
                if self._limit is not None and len(self.received) >= self._limit:
                    return

    def join(self) -> bytes:
        self._thread.join(timeout=30)
        assert not self._thread.is_alive()
        return bytes(self.received)


def stored_archive(tmp_path: Path, data: bytes) -> tuple[Path, str]:
    path = tmp_path / "backup.zip"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        result, _ = archive(data, fd, options())
    finally:
        os.close(fd)
    return path, result.sha256


# Zeroed deflate data fails as invalid data or, decoded anyway, on its CRC.
ZEROED_DEFLATE = r"archive corrompue: (données compressées invalides|somme de contrôle CRC-32)"


def damage_archive(path: Path, how: str) -> bytes:
    """Zero 64 bytes in the middle of the archive ("middle"), or replace it with plain SQL
    ("not-a-zip"); returns the new content."""
    content = bytearray(path.read_bytes())
    if how == "middle":
        middle = len(content) // 2
        content[middle : middle + 64] = bytes(64)
    else:
        content = bytearray(b"SELECT 1;\n" * 1000)
    path.write_bytes(content)
    return bytes(content)


def extract(
    path: Path, expected: str | None, drain: Drain, launcher: ArchiveProcessLauncher
) -> tuple[ExtractResult, list[int]]:
    writes: list[int] = []
    with path.open("rb") as handle:
        result = extract_in_process(
            handle.fileno(),
            drain.write_fd,
            ExtractOptions(expected_sha256=expected, db_type="mysql", nice=0),
            on_write=writes.append,
            launcher=launcher,
        )
    return result, writes


def test_extract_streams_the_checked_sql(tmp_path: Path, launcher: ArchiveProcessLauncher) -> None:
    data = dump_sql(3 * 1024 * 1024 + 17)
    path, sha256 = stored_archive(tmp_path, data)
    drain = Drain()
    result, writes = extract(path, sha256, drain, launcher)
    assert drain.join() == data
    assert result == ExtractResult(written=len(data), complete=True)
    assert sum(writes) == len(data)
    # The pipe's write end was the call's: closed, so the tool saw the end of its input.
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(drain.write_fd)


def test_extract_refuses_a_mismatching_checksum_before_writing(
    tmp_path: Path, launcher: ArchiveProcessLauncher
) -> None:
    path, _ = stored_archive(tmp_path, dump_sql(512 * 1024))
    drain = Drain()
    with pytest.raises(ArchiveError, match="SHA-256 ne correspond pas"):
        extract(path, "0" * 64, drain, launcher)
    assert drain.join() == b""


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("middle", ZEROED_DEFLATE),
        ("not-a-zip", r"archive invalide: fichier ZIP illisible"),
    ],
)
def test_extract_reports_a_damaged_archive(
    tmp_path: Path, launcher: ArchiveProcessLauncher, damage: str, message: str
) -> None:
    path, _ = stored_archive(tmp_path, dump_sql(2 * 1024 * 1024))
    damage_archive(path, damage)
    drain = Drain()
    # No checksum to compare (an archive from elsewhere): the reader's own checks hold.
    with pytest.raises(ArchiveError, match=f"^{message}"):
        extract(path, None, drain, launcher)
    drain.join()


def test_extract_stops_quietly_when_the_tool_stops_reading(
    tmp_path: Path, launcher: ArchiveProcessLauncher
) -> None:
    data = dump_sql(8 * 1024 * 1024)
    path, sha256 = stored_archive(tmp_path, data)
    drain = Drain(limit=64 * 1024)
    result, _ = extract(path, sha256, drain, launcher)
    received = drain.join()
    assert result.complete is False
    assert len(received) < result.written + 2 * 1024 * 1024 < len(data)
    assert data.startswith(received)


def test_extract_by_a_child_killed_midway_is_a_crash(
    tmp_path: Path, launcher: ArchiveProcessLauncher
) -> None:
    path, sha256 = stored_archive(tmp_path, dump_sql(4 * 1024 * 1024))
    read_fd, write_fd = os.pipe()  # nobody reads: the child blocks on the full pipe
    killed: list[int] = []

    def kill_the_child() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            # The child holding the other end of our pipe.
            holders = children_holding(os.readlink(f"/proc/self/fd/{read_fd}"))
            if holders:
                os.kill(holders[0], signal.SIGKILL)
                killed.append(holders[0])
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_child, daemon=True)
    killer.start()
    try:
        with path.open("rb") as handle, pytest.raises(ArchiveProcessCrashedError):
            extract_in_process(
                handle.fileno(),
                write_fd,
                ExtractOptions(expected_sha256=sha256, db_type="mysql", nice=0),
                on_write=lambda _: None,
                launcher=launcher,
            )
    finally:
        killer.join(timeout=30)
        os.close(read_fd)
    assert killed


# ---------------------------------------------------------------------------- verification


def verify(path: Path, launcher: ArchiveProcessLauncher) -> VerifyResult:
    with path.open("rb") as handle:
        checks = VerifyOptions(expected_sha256=None, db_type="mysql", nice=0)
        return verify_in_process(handle.fileno(), checks, launcher=launcher)


def test_verify_hashes_and_tests_a_sound_archive(
    tmp_path: Path, launcher: ArchiveProcessLauncher
) -> None:
    path, sha256 = stored_archive(tmp_path, dump_sql(2 * 1024 * 1024))
    assert verify(path, launcher) == VerifyResult(sha256=sha256, problem=None)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        ("middle", ZEROED_DEFLATE),
        ("not-a-zip", r"archive invalide: fichier ZIP illisible"),
    ],
)
def test_verify_reports_damage_with_the_actual_checksum(
    tmp_path: Path, launcher: ArchiveProcessLauncher, damage: str, problem: str
) -> None:
    path, _ = stored_archive(tmp_path, dump_sql(2 * 1024 * 1024))
    content = damage_archive(path, damage)
    result = verify(path, launcher)
    assert result.sha256 == hashlib.sha256(content).hexdigest()
    assert result.problem is not None
    assert re.match(problem, result.problem), result.problem


# ---------------------------------------------------------------------------- one validator

PG_KEY = b"Zgpo" * 15 + b"abc"  # 63 alphanumerics, as pg_dump draws them
PG_HEAD = b"--\n-- PostgreSQL database dump\n--\n\n\\restrict " + PG_KEY + b"\n\nSET a = 1;\n"
PG_END = b"\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict " + PG_KEY + b"\n\n"


def zip_of(tmp_path: Path, entries: list[tuple[str, bytes]]) -> tuple[Path, str]:
    """An archive as someone else could make it, and its SHA-256 (the record's, once
    replaced along with the archive)."""
    path = tmp_path / "made.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as made:
        for name, data in entries:
            made.writestr(name, data)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def verify_and_extract(
    path: Path, sha256: str, db_type: str, launcher: ArchiveProcessLauncher
) -> tuple[str | None, str | None, bytes]:
    """The problem a verification finds, the error a restore's extraction raises, and
    what that extraction let through to the restore tool."""
    with path.open("rb") as handle:
        checks = VerifyOptions(expected_sha256=sha256, db_type=db_type, nice=0)
        problem = verify_in_process(handle.fileno(), checks, launcher=launcher).problem
    drain = Drain()
    error = None
    with path.open("rb") as handle:
        try:
            extract_in_process(
                handle.fileno(),
                drain.write_fd,
                ExtractOptions(expected_sha256=sha256, db_type=db_type, nice=0),
                on_write=lambda _: None,
                launcher=launcher,
            )
        except ArchiveError as exc:
            error = str(exc)
    return problem, error, drain.join()


@pytest.mark.parametrize(
    ("db_type", "entries", "reason"),
    [
        ("mysql", [("a.sql", dump_sql(1000)), ("b.sql", dump_sql(1000))], "une seule entrée"),
        ("mysql", [("../evil.sql", dump_sql(1000))], "nom d'entrée non sûr: ../evil.sql"),
        ("mysql", [("evil.txt", dump_sql(1000))], "n'est pas un fichier .sql: evil.txt"),
        ("mysql", [("d.sql", b"\\! touch /tmp/x\n" + dump_sql(1000))], "en-tête de mysqldump"),
        ("postgresql", [("d.sql", b"\\! touch /tmp/x\nSELECT 1;\n")], "en-tête de pg_dump"),
        ("postgresql", [("d.sql", PG_HEAD + b"SELECT 1;\n")], "ligne \\unrestrict"),
        (
            "postgresql",
            [("d.sql", PG_HEAD + b"\\unrestrict " + PG_KEY + b"\n\\! touch /tmp/x\n" + PG_END)],
            "clé \\restrict de pg_dump réapparaît",
        ),
        ("postgresql", [("d.sql", PG_HEAD + PG_END + b"\\! touch /tmp/x\n")], "réapparaît"),
    ],
)
def test_verify_and_restore_refuse_the_same_archives_alike(
    tmp_path: Path,
    launcher: ArchiveProcessLauncher,
    db_type: str,
    entries: list[tuple[str, bytes]],
    reason: str,
) -> None:
    path, sha256 = zip_of(tmp_path, entries)
    problem, error, let_through = verify_and_extract(path, sha256, db_type, launcher)
    assert problem is not None
    assert problem.startswith("archive invalide: ")
    assert reason in problem
    assert error == problem
    # Nothing psql or mysql could take for one of their own commands got through.
    assert b"\\!" not in let_through
    assert b"unrestrict" not in let_through


def test_a_mismatching_checksum_reads_the_same_in_verify_and_restore(
    tmp_path: Path, launcher: ArchiveProcessLauncher
) -> None:
    path, _ = zip_of(tmp_path, [("d.sql", dump_sql(10_000))])
    problem, error, let_through = verify_and_extract(path, "0" * 64, "mysql", launcher)
    assert problem == error == "archive corrompue: la somme de contrôle SHA-256 ne correspond pas"
    assert let_through == b""


@pytest.mark.parametrize("db_type", ["postgresql", "mysql"])
def test_a_dump_as_its_tool_writes_it_passes_both(
    tmp_path: Path, launcher: ArchiveProcessLauncher, db_type: str
) -> None:
    body = sample_sql(3 * 1024 * 1024)
    sql = PG_HEAD + body + PG_END if db_type == "postgresql" else dump_sql(len(body))
    path, sha256 = zip_of(tmp_path, [("d.sql", sql)])
    problem, error, let_through = verify_and_extract(path, sha256, db_type, launcher)
    assert problem is None
    assert error is None
    if db_type == "postgresql":
        # All of it but the closing line: psql stays restricted to the end of its input.
        assert let_through == sql[: sql.rindex(b"\\unrestrict")]
    else:
        assert let_through == sql

"""The archive writer process: a dump from a pipe in, a ZIP archive out to a descriptor.

Why a process of its own: compressing and hashing inside the service means job threads
that take the GIL between every call. On a machine whose cores are busy with dump tools
and database servers, such a thread (niced, so it yields to the event loop) is often
preempted while it holds the GIL, and the event loop then waits 15 to 25 ms for it to be
scheduled again: every request in flight pays that. In its own process the compressor
competes for CPU only, at its own lower priority, and the service's process keeps the GIL
for the event loop. The tool's stdout pipe is handed to this process, so no dump byte
passes through the service at all.

Restores take the same road backwards: the child checks the archive's SHA-256, validates it
and streams the decompressed SQL into the restore tool's stdin (``extract_in_process``).
A verification makes the very same checks (``_validated_sql``), writing nothing
(``verify_in_process``): an archive passes both or neither, for the same reason.

Both ends of the protocol live here. A child (``python -m backup_api.archiver``) starts
ahead of need and waits on a control socket for its one job: the options as JSON, with the
dump's pipe and the staged archive's descriptor passed along (``SCM_RIGHTS``). Starting
Python and importing the compressor takes about 0.1 s, which, paid when a backup starts,
is 0.1 s during which the tool fills its pipe and waits (measured: a 5 MB MariaDB backup
took 0.18 s instead of 0.10 s; 0.11 s with a spare). ``ArchiverLauncher`` keeps one such
spare: a job takes it, and the next spare starts once the job is done. Then the child
writes one JSON object per line on stdout:

- ``{"read": n}``: n bytes of SQL handled so far, read from the dump or written to the
  restore tool (on the first, then at most every 0.1 s);
- ``{"busy": true}``: still at work with nothing to count yet (a restore's archive being
  hashed), at most every 0.1 s;
- ``{"result": {...}}``: the job is done (the fields of ``ArchiveResult``,
  ``ExtractResult`` or ``VerifyResult``), or
- ``{"error": {"kind": ..., "message": ..., "errno": ...}}``: it is not, and why.

The parent (``write_archive_in_process``, run in a worker thread of the service) turns the
progress lines into ``Progress`` updates for the supervisor, and returns the result or
raises what the error line says. The child never sees a credential.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator, Mapping
from datetime import datetime
from typing import Any, BinaryIO, NamedTuple

from backup_api.archive import (
    ArchiveError,
    ArchiveResult,
    Compression,
    ZipStreamWriter,
    open_sql_entry,
)
from backup_api.priority import lower_priority, set_group_niceness
from backup_api.readahead import PipeReadAhead
from backup_api.sqlguard import sql_guard
from backup_api.storage.base import FULL_ERRNOS, StorageFullError

__all__ = [
    "ArchiverCrashedError",
    "ArchiverLauncher",
    "ArchiverOptions",
    "ExtractOptions",
    "ExtractResult",
    "VerifyOptions",
    "VerifyResult",
    "extract_in_process",
    "main",
    "verify_in_process",
    "write_archive_in_process",
]

CHUNK = 1 << 20
REPORT_INTERVAL = 0.1
# Bounds an error line well under PIPE_BUF, so it is written in one piece.
_MAX_MESSAGE = 1024
_MAX_JOB_BYTES = 64 * 1024
SHA256_MISMATCH = "archive corrompue: la somme de contrôle SHA-256 ne correspond pas"


class ArchiverOptions(NamedTuple):
    entry_name: str
    compression: Compression
    level: int
    date_time: datetime
    readahead_mib: int
    nice: int

    def to_json(self) -> bytes:
        values = {
            "kind": "archive",
            "entry_name": self.entry_name,
            "compression": self.compression.value,
            "level": self.level,
            "date_time": self.date_time.isoformat(),
            "readahead_mib": self.readahead_mib,
            "nice": self.nice,
        }
        return json.dumps(values).encode()

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> ArchiverOptions:
        return cls(
            entry_name=str(values["entry_name"]),
            compression=Compression(values["compression"]),
            level=int(values["level"]),
            date_time=datetime.fromisoformat(values["date_time"]),
            readahead_mib=int(values["readahead_mib"]),
            nice=int(values["nice"]),
        )


class ExtractOptions(NamedTuple):
    """A restore's job: the archive's expected SHA-256 (None: not checked), the backup's
    database type (whose dump tool's SQL alone is accepted) and niceness."""

    expected_sha256: str | None
    db_type: str
    nice: int

    def to_json(self) -> bytes:
        return _checks_json("extract", self.expected_sha256, self.db_type, self.nice)

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> ExtractOptions:
        return cls(*_checks_from(values))


class ExtractResult(NamedTuple):
    written: int  # bytes of SQL the restore tool accepted
    complete: bool  # False: the tool stopped reading first (its exit code says why)


class VerifyOptions(NamedTuple):
    """A verification's job: the same checks as a restore's."""

    expected_sha256: str | None
    db_type: str
    nice: int

    def to_json(self) -> bytes:
        return _checks_json("verify", self.expected_sha256, self.db_type, self.nice)

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> VerifyOptions:
        return cls(*_checks_from(values))


def _checks_json(kind: str, expected_sha256: str | None, db_type: str, nice: int) -> bytes:
    values = {"kind": kind, "expected_sha256": expected_sha256, "db_type": db_type, "nice": nice}
    return json.dumps(values).encode()


def _checks_from(values: Mapping[str, Any]) -> tuple[str | None, str, int]:
    expected = values["expected_sha256"]
    return (
        None if expected is None else str(expected),
        str(values["db_type"]),
        int(values["nice"]),
    )


class VerifyResult(NamedTuple):
    sha256: str  # of the archive file as it is now
    problem: str | None  # why a restore would refuse it (French), None if sound


_Options = ArchiverOptions | ExtractOptions | VerifyOptions
# A job's "kind": how its options are read, and how many descriptors come with it.
_JOBS: dict[str, tuple[Callable[[Mapping[str, Any]], _Options], int]] = {
    "archive": (ArchiverOptions.from_values, 2),  # the dump's pipe, the staged archive
    "extract": (ExtractOptions.from_values, 2),  # the archive, the restore tool's stdin
    "verify": (VerifyOptions.from_values, 1),  # the archive
}


class ArchiverCrashedError(OSError):
    """The archive writer process ended without saying how (killed, or a crash)."""


# ---------------------------------------------------------------------------- parent side


class ArchiverLauncher:
    """Starts archive writer processes, keeping one started ahead of the next job.

    Thread-safe. ``wrap`` may prefix the command (the service makes the child die with
    it, as it does for the tools); ``env`` is the child's whole environment. ``close``
    ends the waiting spare (it exits when its control socket closes).
    """

    def __init__(
        self, env: Mapping[str, str], wrap: Callable[[list[str]], list[str]] = list
    ) -> None:
        self._env = dict(env)
        self._wrap = wrap
        self._lock = threading.Lock()
        self._spare: _Spare | None = None
        self._closed = False

    def start(self, job: bytes, fds: tuple[int, ...]) -> _Spare:
        """Hand a job (its options as JSON, and its descriptors) to the spare, or to a new
        child if there is none or it died. The caller keeps and closes its ``fds``."""
        with self._lock:
            if self._closed:
                raise RuntimeError("archiver launcher closed")
            spare, self._spare = self._spare, None
        if spare is not None and not spare.assign(job, fds):
            spare.discard()
            spare = None
        if spare is None:
            spare = _Spare.spawn(self._env, self._wrap)
            if not spare.assign(job, fds):
                spare.discard()
                raise ArchiverCrashedError(
                    errno.EIO, "le processus d'archivage n'a pas pu démarrer"
                )
        return spare

    def prepare(self) -> None:
        """Start the spare now if there is none (a job then starts without waiting).

        Best effort: if it cannot start (no process slots, say), the next job starts its
        own writer and reports any failure then.
        """
        with self._lock:
            if self._closed or self._spare is not None:
                return
        try:
            spare = _Spare.spawn(self._env, self._wrap)
        except OSError:
            return
        with self._lock:
            if self._closed or self._spare is not None:
                extra: _Spare | None = spare
            else:
                self._spare, extra = spare, None
        if extra is not None:
            extra.discard()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.discard()


class _Spare:
    """One child process, waiting for its job on a control socket."""

    def __init__(self, process: subprocess.Popen[bytes], control: socket.socket) -> None:
        self.process = process
        self._control = control

    @classmethod
    def spawn(cls, env: Mapping[str, str], wrap: Callable[[list[str]], list[str]]) -> _Spare:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # -P: the working directory is not put on sys.path (only the service's own paths).
        argv = [sys.executable, "-P", "-m", "backup_api.archiver", str(theirs.fileno())]
        try:
            # A session of its own, like the tools: a terminal's Ctrl-C is the service's to
            # handle (it stops the tool, and this process then sees its input end). Under
            # autogroup scheduling the session is also a scheduling group, whose niceness
            # the child sets with its own: inside the service's group its niceness only
            # ranked it below the event loop, and the group as a whole competed with the
            # tool's on equal terms (MariaDB 400 MB: 1.34x the bare dump instead of 1.19x).
            process = subprocess.Popen(
                wrap(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
                env=dict(env),
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return cls(process, ours)

    def assign(self, job: bytes, fds: tuple[int, ...]) -> bool:
        """Send the job; False if the child is gone (killed while it waited)."""
        try:
            with self._control:
                socket.send_fds(self._control, [job], list(fds))
        except OSError:
            return False
        return True

    def discard(self) -> None:
        self._control.close()
        self.process.kill()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process.wait()


def write_archive_in_process(
    dump_fd: int,
    output_fd: int,
    options: ArchiverOptions,
    *,
    on_read: Callable[[int], None],
    launcher: ArchiverLauncher,
) -> ArchiveResult:
    """Archive what ``dump_fd`` delivers into ``output_fd`` in a child process; blocking.

    Owns ``dump_fd``. ``on_read(count)`` is called with each increase of the bytes read.
    Raises ``StorageFullError`` or ``OSError`` as the child reports them,
    ``ArchiverCrashedError`` if it reports nothing.
    """
    try:
        # Our copy of the pipe goes as soon as the child has its own: the tool must see
        # the child's end alone (EPIPE if it dies).
        child = launcher.start(options.to_json(), (dump_fd, output_fd)).process
    finally:
        os.close(dump_fd)
    return ArchiveResult(**_run(child, on_read, launcher))


def extract_in_process(
    archive_fd: int,
    output_fd: int,
    options: ExtractOptions,
    *,
    on_write: Callable[[int], None],
    launcher: ArchiverLauncher,
) -> ExtractResult:
    """Stream the SQL of the archive at ``archive_fd`` into ``output_fd`` (the restore
    tool's stdin) from a child process, after checking the archive; blocking.

    Owns ``output_fd``; ``archive_fd`` stays the caller's, who must not use it meanwhile
    (the child reads through it: the file offset is shared). ``on_write(count)`` is called
    with each increase of the bytes written, and with 0 as a sign of life while the
    archive is being hashed. Raises ``ArchiveError`` (a French message for the owner) for
    a corrupt or mismatching archive, ``OSError`` as the child reports it, and
    ``ArchiverCrashedError`` if it reports nothing.
    """
    try:
        child = launcher.start(options.to_json(), (archive_fd, output_fd)).process
    finally:
        os.close(output_fd)
    return ExtractResult(**_run(child, on_write, launcher))


def verify_in_process(
    archive_fd: int, options: VerifyOptions, *, launcher: ArchiverLauncher
) -> VerifyResult:
    """Hash the archive at ``archive_fd`` and test it whole in a child process; blocking.

    ``archive_fd`` stays the caller's, who must not use it meanwhile (the file offset is
    shared). A damaged archive is a ``problem`` in the result, not an error; ``OSError``
    and ``ArchiverCrashedError`` as for the other jobs.
    """
    child = launcher.start(options.to_json(), (archive_fd,)).process
    return VerifyResult(**_run(child, lambda _: None, launcher))


def _run(
    child: subprocess.Popen[bytes], on_progress: Callable[[int], None], launcher: ArchiverLauncher
) -> dict[str, Any]:
    try:
        return _relay(child, on_progress)
    finally:
        # The next spare starts once this job is done: booting Python takes a core for
        # about 0.1 s, which during the job would be taken from the tool.
        launcher.prepare()


def _relay(child: subprocess.Popen[bytes], on_progress: Callable[[int], None]) -> dict[str, Any]:
    """The child's result fields, once it has exited; raises what its error line says."""
    assert child.stdout is not None
    reported = 0
    outcome: dict[str, Any] | None = None
    with child.stdout:
        for line in child.stdout:
            try:
                message = json.loads(line)
            except ValueError:  # cut short by a kill: treated as saying nothing
                continue
            if "read" in message:
                count = int(message["read"])
                if count > reported:
                    on_progress(count - reported)
                    reported = count
            elif "busy" in message:
                on_progress(0)  # a sign of life, for the idle timeout
            else:
                outcome = message
    returncode = child.wait()
    if outcome is not None and "result" in outcome:
        result: dict[str, Any] = outcome["result"]
        return result
    if outcome is not None and "error" in outcome:
        raise _error_from(outcome["error"])
    raise ArchiverCrashedError(
        errno.EIO, f"le processus d'archivage s'est arrêté (code {returncode})"
    )


def _error_from(error: Mapping[str, object]) -> Exception:
    kind = error.get("kind")
    message = str(error.get("message") or "")
    code = error.get("errno")
    if kind == "storage_full":
        return StorageFullError(code if isinstance(code, int) else errno.ENOSPC, message)
    if kind == "os" and isinstance(code, int):
        return OSError(code, message)
    if kind == "archive" and message:
        return ArchiveError(message)
    return RuntimeError(message or "erreur interne du processus d'archivage")


# ---------------------------------------------------------------------------- child side


class _Reporter:
    """Writes protocol lines to stdout; progress at most every ``REPORT_INTERVAL``."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self._total = 0
        self._last = 0.0

    def read(self, count: int) -> None:
        self._total += count
        now = time.monotonic()
        if now - self._last >= REPORT_INTERVAL:
            self._last = now
            self._send({"read": self._total})

    def busy(self) -> None:
        now = time.monotonic()
        if now - self._last >= REPORT_INTERVAL:
            self._last = now
            self._send({"busy": True})

    def finish(self, message: dict[str, object]) -> None:
        self._send({"read": self._total})
        self._send(message)

    def _send(self, message: dict[str, object]) -> None:
        line = (json.dumps(message, ensure_ascii=False) + "\n").encode()
        with self._lock:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]


class _FileSink:
    """The archive's file descriptor, written raw (the writer already batches)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, data: bytes | memoryview, /) -> int:
        return os.write(self._fd, data)


def _archive(
    options: ArchiverOptions, dump_fd: int, output_fd: int, reporter: _Reporter
) -> ArchiveResult:
    writer = ZipStreamWriter(
        _FileSink(output_fd),
        options.entry_name,
        compression=options.compression,
        level=options.level,
        date_time=options.date_time,
    )
    if options.readahead_mib:
        with PipeReadAhead(
            dump_fd,
            chunk_size=CHUNK,
            max_chunks=max(1, options.readahead_mib * (1 << 20) // CHUNK),
            on_read=reporter.read,
        ) as chunks:
            for chunk in chunks:
                writer.write(chunk)
    else:
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        while count := os.readv(dump_fd, [buffer]):
            reporter.read(count)
            writer.write(view[:count])
    return writer.close()


def _sha256_of(archive: BinaryIO, reporter: _Reporter) -> str:
    """The whole file's digest; the file is left at its start."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    while count := archive.readinto(buffer):  # type: ignore[attr-defined]
        digest.update(view[:count])
        reporter.busy()
    archive.seek(0)
    return digest.hexdigest()


def _validated_sql(
    archive: BinaryIO, sha256: str | None, options: ExtractOptions | VerifyOptions
) -> Generator[bytes | memoryview, None, None]:
    """The one validator of restores and verifications: the archive's SHA-256 (``sha256``,
    just computed, against the expected one), its structure (a single plain ``.sql``
    entry), and its SQL (its dump tool's own, see ``sqlguard``). Yields the SQL as far as
    it is checked; raises ``ArchiveError`` (French) at the first problem."""
    if options.expected_sha256 is not None and sha256 != options.expected_sha256:
        raise ArchiveError(SHA256_MISMATCH)
    guard = sql_guard(options.db_type)
    _, entry = open_sql_entry(archive)
    with entry:
        while chunk := entry.read(CHUNK):
            yield from guard.feed(chunk)
    yield from guard.finish()


def _extract(
    options: ExtractOptions, archive_fd: int, output_fd: int, reporter: _Reporter
) -> ExtractResult:
    # Nothing reaches the restore tool before the archive is proven intact.
    with open(archive_fd, "rb", buffering=0, closefd=True) as archive:
        sha256 = None if options.expected_sha256 is None else _sha256_of(archive, reporter)
        written = 0
        with contextlib.closing(_validated_sql(archive, sha256, options)) as pieces:
            for piece in pieces:
                view = memoryview(piece)
                try:
                    while view:
                        view = view[os.write(output_fd, view) :]
                except BrokenPipeError:
                    return ExtractResult(written=written, complete=False)
                written += len(piece)
                reporter.read(len(piece))
    return ExtractResult(written=written, complete=True)


def _verify(options: VerifyOptions, archive_fd: int, reporter: _Reporter) -> VerifyResult:
    with open(archive_fd, "rb", buffering=0, closefd=True) as archive:
        sha256 = _sha256_of(archive, reporter)
        try:
            with contextlib.closing(_validated_sql(archive, sha256, options)) as pieces:
                for _ in pieces:
                    reporter.busy()
        except ArchiveError as exc:
            return VerifyResult(sha256=sha256, problem=str(exc))
    return VerifyResult(sha256=sha256, problem=None)


def _describe(exc: BaseException) -> dict[str, object]:
    if isinstance(exc, ArchiveError):
        return {"kind": "archive", "message": str(exc)[:_MAX_MESSAGE]}
    if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
        return {"kind": "storage_full", "message": "espace disque insuffisant", "errno": exc.errno}
    if isinstance(exc, OSError):
        return {"kind": "os", "message": (exc.strerror or "")[:_MAX_MESSAGE], "errno": exc.errno}
    return {"kind": "internal", "message": ""}


def _receive_job(control_fd: int) -> tuple[_Options, list[int]] | None:
    """Wait for the job: None if the service closed the socket without one."""
    with socket.socket(fileno=control_fd) as control:
        message, fds, _, _ = socket.recv_fds(control, _MAX_JOB_BYTES, 2)
    values = json.loads(message) if message else {}
    kind = values.get("kind")
    job = _JOBS.get(kind) if isinstance(kind, str) else None
    if job is None or len(fds) != job[1]:
        for fd in fds:
            os.close(fd)
        return None
    return job[0](values), fds


def main(argv: list[str]) -> int:
    job = _receive_job(int(argv[0]))
    if job is None:
        return 0
    options, fds = job
    if options.nice:
        lower_priority(0, options.nice)
        set_group_niceness(os.getpid(), options.nice)  # its session's (see _Spare.spawn)
    reporter = _Reporter(sys.stdout.fileno())
    try:
        result: ArchiveResult | ExtractResult | VerifyResult
        if isinstance(options, VerifyOptions):
            result = _verify(options, fds[0], reporter)
        elif isinstance(options, ExtractOptions):
            result = _extract(options, fds[0], fds[1], reporter)
        else:
            result = _archive(options, fds[0], fds[1], reporter)
    except Exception as exc:
        reporter.finish({"error": _describe(exc)})
        if not isinstance(exc, OSError | ArchiveError):
            raise  # the traceback goes to the service's stderr
        return 1
    reporter.finish({"result": result._asdict()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

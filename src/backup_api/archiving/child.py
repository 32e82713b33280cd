"""The archive process: a dump from a pipe in, a ZIP archive out, and back for restores.

Why a process of its own: compressing and hashing inside the service would mean threads
that take the GIL between every call, and the event loop waiting for them whenever the
machine's cores are busy with dump tools and database servers: every request in flight
would pay for it. In its own process the compressor competes for CPU only, at its own
lower priority, and the service keeps the GIL for the event loop. The tool's stdout pipe
is handed to this process, so no dump byte passes through the service at all.

Restores take the same road backwards: the child checks the archive's SHA-256, validates
it and streams the decompressed SQL into the restore tool's stdin. A verification makes
the very same checks (``_validated_sql``), writing nothing: an archive passes both or
neither, for the same reason. The child never sees a database credential.

Encrypted backups (age) are encrypted here too, in the same pass: the ZIP writer's output
goes through the age sink, and what leaves that sink is hashed (the stored file's
SHA-256) and written to every output. Restores and verifications read the stored file
through a decrypting, seekable reader, so the ZIP checks are the same. The age keys (a
passphrase, a restore's identity) come in the job's message only.

Started as ``python -P -m backup_api.archiving.child CONTROL_FD`` (see ``launcher``), it
waits on its control socket for one job (see ``protocol``).

Import rule: this module and everything it imports may import only the standard library,
``isal``, and ``backup_api.archiving.{archive,protocol,readahead,sqlguard}``,
``backup_api.jobs.priority`` and ``backup_api.storage.base`` (and their packages'
``__init__``, kept empty); encrypted jobs alone also import
``backup_api.archiving.agecrypt`` and ``cryptography`` (with its cffi backend), so plain
backups never pay for them. A backup waits for this process to start, so each further
import (the ORM, the web framework, the settings) would slow every backup.
``tests/archiving/test_archive_process_imports.py`` runs jobs in children started as the service
starts them, under ``python -X importtime``, and fails on any module beyond that list.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, BinaryIO, cast

from backup_api.archiving.archive import (
    ArchiveError,
    ArchiveResult,
    ArchiveSink,
    ZipStreamWriter,
    open_sql_entry,
)
from backup_api.archiving.protocol import (
    JOBS,
    MAX_JOB_BYTES,
    MAX_OUTPUTS,
    REPORT_INTERVAL,
    AgeKeys,
    ArchiveOptions,
    ExtractOptions,
    ExtractResult,
    Options,
    VerifyOptions,
    VerifyResult,
    descriptor_count,
    encode_error,
)
from backup_api.archiving.readahead import PipeReadAhead
from backup_api.archiving.rowcount import RowCounter, row_counter
from backup_api.archiving.sqlguard import sql_guard
from backup_api.jobs.priority import lower_priority, set_group_niceness

if TYPE_CHECKING:
    from backup_api.archiving.agecrypt import AgeDecryptingReader

CHUNK = 1 << 20
SHA256_MISMATCH = "archive corrompue: la somme de contrôle SHA-256 ne correspond pas"


class _Reporter:
    """Writes protocol lines to stdout; progress at most every ``REPORT_INTERVAL``, and,
    once ``follow`` started, whatever changed since the last line every ``CATCH_UP``
    (the counts a throttled line left out, the writes after the last read: a dump that
    stalls still shows where it stands)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self._total = 0
        self._last = 0.0
        self._reported: dict[str, object] = {}
        self._finished = False
        #: More counts for each progress line (the job's other side), read only when a
        #: line is sent: never per chunk.
        self.counts: Callable[[], dict[str, int]] = dict

    def read(self, count: int) -> None:
        self._total += count
        now = time.monotonic()
        if now - self._last >= REPORT_INTERVAL:
            self._last = now
            self._progress()

    def busy(self) -> None:
        now = time.monotonic()
        if now - self._last >= REPORT_INTERVAL:
            self._last = now
            self._send({"busy": True})

    def follow(self) -> None:
        threading.Thread(target=self._catch_up, name="reporter", daemon=True).start()

    def _catch_up(self) -> None:
        while not self._finished:
            time.sleep(CATCH_UP)
            self._progress(only_changed=True)

    def _progress(self, *, only_changed: bool = False) -> None:
        message: dict[str, object] = {"read": self._total, **self.counts()}
        with self._lock:
            if self._finished or (only_changed and message == self._reported):
                return
            self._reported = message
            self._write(message)

    def finish(self, message: dict[str, object]) -> None:
        self._progress()
        with self._lock:
            self._finished = True
            self._write(message)

    def _send(self, message: dict[str, object]) -> None:
        with self._lock:
            self._write(message)

    def _write(self, message: dict[str, object]) -> None:
        line = (json.dumps(message, ensure_ascii=False) + "\n").encode()
        view = memoryview(line)
        while view:
            view = view[os.write(self._fd, view) :]


#: How often ``_Reporter.follow`` sends what changed since its last line.
CATCH_UP = 0.5


class _FanOutSink:
    """The archive's outputs (one per destination), each written raw and whole (the ZIP
    writer already batches). An output that fails leaves the job with its error, and the
    others go on: one destination's full disk or lost upload costs that copy alone. When
    the last one fails, its error ends the job."""

    def __init__(self, fds: list[int]) -> None:
        self._live = list(range(len(fds)))
        self._fds = fds
        self.errors: list[OSError | None] = [None] * len(fds)
        #: The bytes of the archive written so far (to each live output).
        self.written = 0

    def write(self, data: bytes | memoryview, /) -> None:
        view = memoryview(data)
        self.written += len(view)
        for index in list(self._live):
            try:
                rest = view
                while rest:
                    rest = rest[os.write(self._fds[index], rest) :]
            except OSError as exc:
                self.errors[index] = exc
                self._live.remove(index)
                os.close(self._fds[index])  # a reader (an upload process) sees its end
                if not self._live:
                    raise


class _HashingSink:
    """Hashes and counts what passes on to ``sink``: the encrypted file as stored."""

    def __init__(self, sink: _FanOutSink) -> None:
        self._sink = sink
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview, /) -> None:
        self._hash.update(data)
        self.size += len(data)
        self._sink.write(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _archive(
    options: ArchiveOptions, dump_fd: int, output_fds: list[int], reporter: _Reporter
) -> dict[str, object]:
    sink = _FanOutSink(output_fds)
    reporter.counts = lambda: {"written": sink.written}
    keys = options.encryption
    counter = None if options.count_rows is None else row_counter(options.count_rows)
    if keys is None:  # a plain ZIP: the writer hashes what it emits
        result = _archive_into(options, sink, dump_fd, reporter, counter)
    else:
        from backup_api.archiving.agecrypt import AgeEncryptingSink

        stored = _HashingSink(sink)
        encrypting = AgeEncryptingSink(
            stored,
            recipients=list(keys.recipients) if keys.passphrase is None else None,
            passphrase=keys.passphrase,
            scrypt_log_n=keys.scrypt_log_n,
        )
        result = _archive_into(options, encrypting, dump_fd, reporter, counter)
        encrypting.close()
        result = result._replace(size=stored.size, sha256=stored.hexdigest())
    errors = [None if error is None else encode_error(error) for error in sink.errors]
    table_rows = None if counter is None else counter.tables
    return {**result._asdict(), "output_errors": errors, "table_rows": table_rows}


def _archive_into(
    options: ArchiveOptions,
    target: ArchiveSink,
    dump_fd: int,
    reporter: _Reporter,
    counter: RowCounter | None = None,
) -> ArchiveResult:
    writer = ZipStreamWriter(
        target,
        options.entry_name,
        compression=options.compression,
        level=options.level,
        date_time=options.date_time,
        hashed=options.encryption is None,  # else the encrypted file is hashed, by its sink
    )
    if options.readahead_mib:
        with PipeReadAhead(
            dump_fd,
            chunk_size=CHUNK,
            max_chunks=max(1, options.readahead_mib * (1 << 20) // CHUNK),
            on_read=reporter.read,
        ) as chunks:
            for chunk in chunks:
                if counter is not None:
                    counter.feed(chunk)
                writer.write(chunk)
    else:
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        while count := os.readv(dump_fd, [buffer]):
            reporter.read(count)
            if counter is not None:
                counter.feed(view[:count])
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
    damaged: tuple[type[Exception], ...] = ()
    if options.encrypted:
        from backup_api.archiving.agecrypt import AgeError

        # A raw, seekable file: what zipfile needs of it.
        archive, damaged = cast(BinaryIO, _decrypting(archive, options.keys)), (AgeError,)
    try:
        _, entry = open_sql_entry(archive)
        with entry:
            while chunk := entry.read(CHUNK):
                yield from guard.feed(chunk)
    except damaged as exc:  # a chunk that fails authentication: altered
        raise ArchiveError(str(exc)) from None
    yield from guard.finish()


def _decrypting(archive: BinaryIO, keys: AgeKeys | None) -> AgeDecryptingReader:
    """The ZIP inside an age file, seekable; its final chunk already authenticated (a
    truncated file fails here), every chunk read later as it is read."""
    from backup_api.archiving.agecrypt import AgeDecryptingReader, AgeError

    if keys is None or not (keys.identities or keys.passphrase):
        raise ArchiveError("sauvegarde chiffrée: clé de déchiffrement absente")
    try:
        if keys.passphrase is not None:
            return AgeDecryptingReader(archive, passphrase=keys.passphrase)
        return AgeDecryptingReader(archive, identities=list(keys.identities))
    except AgeError as exc:
        raise ArchiveError(str(exc)) from None


def _age_problem(archive: BinaryIO, options: VerifyOptions) -> str | None:
    """For a verification of an encrypted archive: every chunk authenticated when it can
    be opened, else (no keys) what can be checked without them. Why it is refused, if it is."""
    from backup_api.archiving.agecrypt import AgeError, inspect

    try:
        if options.keys is None:
            inspect(archive)
        else:
            _decrypting(archive, options.keys).verify_all()
    except (AgeError, ArchiveError) as exc:
        return str(exc)
    finally:
        archive.seek(0)
    return None


class _Consumed:
    """How far into the archive the extraction is (the descriptor's offset), for the
    progress lines; once the archive is closed, where it ended."""

    def __init__(self, archive_fd: int) -> None:
        self._fd = archive_fd
        self._last = 0

    def __call__(self) -> dict[str, int]:
        with contextlib.suppress(OSError):  # closed: the extraction is over
            self._last = os.lseek(self._fd, 0, os.SEEK_CUR)
        return {"consumed": self._last}


def _extract(
    options: ExtractOptions, archive_fd: int, output_fd: int, reporter: _Reporter
) -> ExtractResult:
    # Nothing reaches the restore tool before the archive is proven intact.
    with open(archive_fd, "rb", buffering=0, closefd=True) as archive:
        sha256 = None if options.expected_sha256 is None else _sha256_of(archive, reporter)
        # How far into the archive the extraction is (the offset is the descriptor's).
        consumed = reporter.counts = _Consumed(archive_fd)
        written = 0
        try:
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
        finally:
            consumed()  # where it ended, for the last progress line
    return ExtractResult(written=written, complete=True)


def _verify(options: VerifyOptions, archive_fd: int, reporter: _Reporter) -> VerifyResult:
    with open(archive_fd, "rb", buffering=0, closefd=True) as archive:
        sha256 = _sha256_of(archive, reporter)
        if options.expected_sha256 is not None and sha256 != options.expected_sha256:
            return VerifyResult(sha256=sha256, problem=SHA256_MISMATCH)
        if options.encrypted:
            problem = _age_problem(archive, options)
            if problem is not None or options.keys is None:
                return VerifyResult(sha256, problem, contents_checked=False)
        try:
            with contextlib.closing(_validated_sql(archive, sha256, options)) as pieces:
                for _ in pieces:
                    reporter.busy()
        except ArchiveError as exc:
            return VerifyResult(sha256=sha256, problem=str(exc))
    return VerifyResult(sha256=sha256, problem=None)


def _receive_job(control_fd: int) -> tuple[Options, list[int]] | None:
    """Wait for the job: None if the service closed the socket without one."""
    with socket.socket(fileno=control_fd) as control:
        message, fds, _, _ = socket.recv_fds(control, MAX_JOB_BYTES, 1 + MAX_OUTPUTS)
    values = json.loads(message) if message else {}
    kind = values.get("kind")
    parse = JOBS.get(kind) if isinstance(kind, str) else None
    options = None if parse is None else parse(values)
    if options is None or len(fds) != descriptor_count(options):
        for fd in fds:
            os.close(fd)
        return None
    return options, fds


def main(argv: list[str]) -> int:
    job = _receive_job(int(argv[0]))
    if job is None:
        return 0
    options, fds = job
    if options.nice:
        lower_priority(0, options.nice)
        set_group_niceness(os.getpid(), options.nice)  # its session's (see launcher)
    reporter = _Reporter(sys.stdout.fileno())
    if not isinstance(options, VerifyOptions):
        reporter.follow()  # the jobs whose progress is shown (see jobs.progress)
    try:
        result: dict[str, object]
        if isinstance(options, VerifyOptions):
            result = _verify(options, fds[0], reporter)._asdict()
        elif isinstance(options, ExtractOptions):
            result = _extract(options, fds[0], fds[1], reporter)._asdict()
        else:
            result = _archive(options, fds[0], fds[1:], reporter)
    except Exception as exc:
        reporter.finish({"error": encode_error(exc)})
        if not isinstance(exc, OSError | ArchiveError):
            raise  # the traceback goes to the service's stderr
        return 1
    reporter.finish({"result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

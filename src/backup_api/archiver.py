"""The archive writer process: a dump on its stdin, a ZIP archive out to a file descriptor.

Why a process of its own: compressing and hashing inside the service means job threads
that take the GIL between every call. On a machine whose cores are busy with dump tools
and database servers, such a thread (niced, so it yields to the event loop) is often
preempted while it holds the GIL, and the event loop then waits 15 to 25 ms for it to be
scheduled again: every request in flight pays that. In its own process the compressor
competes for CPU only, at its own lower priority, and the service's process keeps the GIL
for the event loop. The tool's stdout is this process's stdin, so no dump byte passes
through the service at all.

Both ends of the protocol live here. The child (``python -m backup_api.archiver``) writes
one JSON object per line on stdout:

- ``{"read": n}``: n dump bytes read so far (on the first read, then at most every 0.1 s);
- ``{"result": {...}}``: the archive is complete (the fields of ``ArchiveResult``), or
- ``{"error": {"kind": ..., "message": ..., "errno": ...}}``: it is not, and why.

The parent (``write_archive_in_process``, run in a worker thread of the service) starts
it, turns the progress lines into ``Progress`` updates for the supervisor, and returns the
result or raises what the error line says. The child never sees a credential.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from backup_api.archive import ArchiveError, ArchiveResult, Compression, ZipStreamWriter
from backup_api.readahead import PipeReadAhead
from backup_api.storage.base import StorageFullError

__all__ = ["ArchiverCrashedError", "ArchiverOptions", "main", "write_archive_in_process"]

CHUNK = 1 << 20
REPORT_INTERVAL = 0.1
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# Bounds an error line well under PIPE_BUF, so it is written in one piece.
_MAX_MESSAGE = 1024


@dataclass(frozen=True)
class ArchiverOptions:
    entry_name: str
    compression: Compression
    level: int
    date_time: datetime
    readahead_mib: int
    nice: int

    def argv(self, output_fd: int) -> list[str]:
        return [
            f"--output-fd={output_fd}",
            f"--entry={self.entry_name}",
            f"--compression={self.compression.value}",
            f"--level={self.level}",
            f"--date-time={self.date_time.isoformat()}",
            f"--readahead-mib={self.readahead_mib}",
            f"--nice={self.nice}",
        ]


class ArchiverCrashedError(OSError):
    """The archive writer process ended without saying how (killed, or a crash)."""


# ---------------------------------------------------------------------------- parent side


def write_archive_in_process(
    dump_fd: int,
    output_fd: int,
    options: ArchiverOptions,
    *,
    on_read: Callable[[int], None],
    env: Mapping[str, str],
    wrap: Callable[[list[str]], list[str]] = list,
) -> ArchiveResult:
    """Archive what ``dump_fd`` delivers into ``output_fd`` in a child process; blocking.

    Owns ``dump_fd`` (closed once the child has it). ``on_read(count)`` is called with each
    increase of the bytes read. ``wrap`` may prefix the command (the service makes the
    child die with it, as it does for the tools). Raises ``StorageFullError``,
    ``ArchiveError`` or ``OSError`` as the child reports them, ``ArchiverCrashedError`` if
    it reports nothing.
    """
    # -P: the working directory is not put on sys.path (only the service's own paths).
    argv = wrap([sys.executable, "-P", "-m", "backup_api.archiver", *options.argv(output_fd)])
    try:
        # Its own process group, like the tools: a terminal's Ctrl-C is the service's to
        # handle (it stops the tool, and this process then sees the end of its input).
        child = subprocess.Popen(
            argv,
            stdin=dump_fd,
            stdout=subprocess.PIPE,
            pass_fds=(output_fd,),
            env=dict(env),
            process_group=0,
        )
    finally:
        os.close(dump_fd)
    assert child.stdout is not None
    reported = 0
    outcome: dict[str, object] | None = None
    with child.stdout:
        for line in child.stdout:
            try:
                message = json.loads(line)
            except ValueError:  # cut short by a kill: treated as saying nothing
                continue
            if "read" in message:
                count = int(message["read"])
                if count > reported:
                    on_read(count - reported)
                    reported = count
            else:
                outcome = message
    returncode = child.wait()
    if outcome is not None and "result" in outcome:
        return ArchiveResult(**outcome["result"])  # type: ignore[arg-type]
    if outcome is not None and "error" in outcome:
        raise _error_from(outcome["error"])  # type: ignore[arg-type]
    raise ArchiverCrashedError(
        errno.EIO, f"le processus d'archivage s'est arrêté (code {returncode})"
    )


def _error_from(error: Mapping[str, object]) -> Exception:
    kind = error.get("kind")
    message = str(error.get("message") or "")
    code = error.get("errno")
    if kind == "storage_full":
        return StorageFullError(code if isinstance(code, int) else errno.ENOSPC, message)
    if kind == "archive":
        return ArchiveError(message)
    if kind == "os" and isinstance(code, int):
        return OSError(code, message)
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
        if self._last == 0.0 or now - self._last >= REPORT_INTERVAL:
            self._last = now
            self._send({"read": self._total})

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


def _archive(options: ArchiverOptions, output_fd: int, reporter: _Reporter) -> ArchiveResult:
    writer = ZipStreamWriter(
        _FileSink(output_fd),
        options.entry_name,
        compression=options.compression,
        level=options.level,
        date_time=options.date_time,
    )
    stdin = sys.stdin.fileno()
    if options.readahead_mib:
        with PipeReadAhead(
            stdin,
            chunk_size=CHUNK,
            max_chunks=max(1, options.readahead_mib * (1 << 20) // CHUNK),
            on_read=reporter.read,
        ) as chunks:
            for chunk in chunks:
                writer.write(chunk)
    else:
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        while count := os.readv(stdin, [buffer]):
            reporter.read(count)
            writer.write(view[:count])
    return writer.close()


def _describe(exc: BaseException) -> dict[str, object]:
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return {"kind": "storage_full", "message": "espace disque insuffisant", "errno": exc.errno}
    if isinstance(exc, ArchiveError):
        return {"kind": "archive", "message": str(exc)[:_MAX_MESSAGE]}
    if isinstance(exc, OSError):
        return {"kind": "os", "message": (exc.strerror or "")[:_MAX_MESSAGE], "errno": exc.errno}
    return {"kind": "internal", "message": ""}


def _parse(argv: list[str] | None) -> tuple[ArchiverOptions, int]:
    parser = argparse.ArgumentParser(prog="python -m backup_api.archiver")
    parser.add_argument("--output-fd", type=int, required=True)
    parser.add_argument("--entry", required=True)
    parser.add_argument("--compression", type=Compression, required=True)
    parser.add_argument("--level", type=int, required=True)
    parser.add_argument("--date-time", type=datetime.fromisoformat, required=True)
    parser.add_argument("--readahead-mib", type=int, default=32)
    parser.add_argument("--nice", type=int, default=0)
    args = parser.parse_args(argv)
    options = ArchiverOptions(
        entry_name=args.entry,
        compression=args.compression,
        level=args.level,
        date_time=args.date_time,
        readahead_mib=args.readahead_mib,
        nice=args.nice,
    )
    return options, args.output_fd


def main(argv: list[str] | None = None) -> int:
    options, output_fd = _parse(argv)
    if options.nice:
        with contextlib.suppress(OSError):
            current = os.getpriority(os.PRIO_PROCESS, 0)
            os.setpriority(os.PRIO_PROCESS, 0, max(current, options.nice))
    reporter = _Reporter(sys.stdout.fileno())
    try:
        result = _archive(options, output_fd, reporter)
    except Exception as exc:
        reporter.finish({"error": _describe(exc)})
        if not isinstance(exc, OSError | ArchiveError):
            raise  # the traceback goes to the service's stderr
        return 1
    reporter.finish({"result": dataclasses.asdict(result)})
    return 0


if __name__ == "__main__":
    sys.exit(main())

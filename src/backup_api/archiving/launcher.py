"""The service's end of the archive process: starting children, handing them jobs, and
following their progress lines on the event loop.

A child (``python -P -m backup_api.archiving.child``) is started ahead of need and waits
on its control socket for its one job: a backup that starts finds it running, instead of
waiting while Python boots and imports the compressor, during which the tool fills its
pipe and stalls. ``ArchiveProcessLauncher`` keeps one such waiting process: a job takes
it, and the next one starts once the job is done.

``write_archive``, ``extract_archive`` and ``verify_archive`` are coroutines: the child's
stdout is read on the event loop, each progress line becoming an ``on_progress`` call,
and only the short blocking steps (starting a process, reaping it) go to the executor.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

from backup_api.archiving.archive import ArchiveResult
from backup_api.archiving.protocol import (
    ArchiveOptions,
    ArchiveOutcome,
    ArchiveProcessCrashedError,
    ExtractOptions,
    ExtractResult,
    Options,
    VerifyOptions,
    VerifyResult,
    decode_error,
)

#: Called with each progress line of a child (``{"read": n, ...}``, see ``protocol``).
Reported = Callable[[Mapping[str, Any]], None]

__all__ = [
    "ArchiveProcessLauncher",
    "extract_archive",
    "verify_archive",
    "write_archive",
]

CHILD_MODULE = "backup_api.archiving.child"
NOT_STARTED = "le processus d'archivage n'a pas pu démarrer"


class ArchiveProcessLauncher:
    """Starts archive processes, keeping one started ahead of the next job.

    Thread-safe. ``wrap`` may prefix the command (the service makes the child die with
    it, as it does for the tools); ``env`` is the child's whole environment. ``close``
    ends the waiting process (it exits when its control socket closes).
    """

    def __init__(
        self, env: Mapping[str, str], wrap: Callable[[list[str]], list[str]] = list
    ) -> None:
        self._env = dict(env)
        self._wrap = wrap
        self._lock = threading.Lock()
        self._waiting: _WaitingProcess | None = None
        self._closed = False

    def start(self, job: bytes, fds: tuple[int, ...]) -> subprocess.Popen[bytes]:
        """Hand a job (its options as JSON, and its descriptors) to the waiting process,
        or to a new one if there is none or it died; blocking. The caller keeps and closes
        its ``fds``."""
        with self._lock:
            if self._closed:
                raise RuntimeError("archive process launcher closed")
            waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.assign(job, fds):
            waiting.discard()
            waiting = None
        if waiting is None:
            waiting = _WaitingProcess.spawn(self._env, self._wrap)
            if not waiting.assign(job, fds):
                waiting.discard()
                raise ArchiveProcessCrashedError(errno.EIO, NOT_STARTED)
        return waiting.process

    def prepare(self) -> None:
        """Start the next waiting process now if there is none; blocking.

        Best effort: if it cannot start (no process slots, say), the next job starts its
        own and reports any failure then.
        """
        with self._lock:
            if self._closed or self._waiting is not None:
                return
        try:
            started = _WaitingProcess.spawn(self._env, self._wrap)
        except OSError:
            return
        with self._lock:
            if self._closed or self._waiting is not None:
                extra: _WaitingProcess | None = started
            else:
                self._waiting, extra = started, None
        if extra is not None:
            extra.discard()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.discard()


class _WaitingProcess:
    """One child process, waiting for its job on a control socket."""

    def __init__(self, process: subprocess.Popen[bytes], control: socket.socket) -> None:
        self.process = process
        self._control = control

    @classmethod
    def spawn(
        cls, env: Mapping[str, str], wrap: Callable[[list[str]], list[str]]
    ) -> _WaitingProcess:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # -P: the working directory is not put on sys.path (only the service's own paths).
        argv = [sys.executable, "-P", "-m", CHILD_MODULE, str(theirs.fileno())]
        try:
            # A session of its own, like the tools: a terminal's Ctrl-C is the service's to
            # handle (it stops the tool, and this process then sees its input end). Under
            # autogroup scheduling the session is also a scheduling group, whose niceness
            # the child sets with its own: inside the service's group its niceness would
            # only rank it below the event loop, and the group as a whole would compete
            # with the tool's on equal terms.
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


async def write_archive(
    dump_fd: int,
    output_fds: Sequence[int],
    options: ArchiveOptions,
    *,
    on_read: Callable[[int], None],
    launcher: ArchiveProcessLauncher,
    executor: Executor,
    on_report: Reported | None = None,
) -> ArchiveOutcome:
    """Archive what ``dump_fd`` delivers into every one of ``output_fds`` in an archive
    process (one pass: the archive is made once and written to each).

    Owns ``dump_fd``: our copy goes as soon as the child has its own, since the tool must
    see the child's end alone (EPIPE if it dies). ``on_read(count)`` is called with each
    increase of the bytes read, ``on_report`` with each progress line (see ``protocol``).
    An output that fails is reported in the outcome while the
    others go on; when all fail, raises ``StorageFullError`` or ``OSError`` as the child
    reports the last one, ``ArchiveProcessCrashedError`` if it reports nothing.
    """
    options = options._replace(outputs=len(output_fds))
    fds = (dump_fd, *output_fds)
    fields = await _run(options, fds, dump_fd, on_read, launcher, executor, on_report)
    errors = tuple(None if e is None else decode_error(e) for e in fields.pop("output_errors"))
    counted = fields.pop("table_rows", None)
    table_rows = None if counted is None else {str(k): int(v) for k, v in counted.items()}
    return ArchiveOutcome(ArchiveResult(**fields), errors, table_rows)


async def extract_archive(
    archive_fd: int,
    output_fd: int,
    options: ExtractOptions,
    *,
    on_write: Callable[[int], None],
    launcher: ArchiveProcessLauncher,
    executor: Executor,
    on_report: Reported | None = None,
) -> ExtractResult:
    """Stream the SQL of the archive at ``archive_fd`` into ``output_fd`` (the restore
    tool's stdin) from an archive process, after checking the archive.

    Owns ``output_fd``; ``archive_fd`` stays the caller's, who must not use it meanwhile
    (the child reads through it: the file offset is shared). ``on_write(count)`` is called
    with each increase of the bytes written, and with 0 as a sign of life while the
    archive is being hashed; ``on_report`` with each progress line. Raises
    ``ArchiveError`` (a French message for the owner) for a corrupt or mismatching
    archive, ``OSError`` as the child reports it, and ``ArchiveProcessCrashedError`` if
    it reports nothing.
    """
    fds = (archive_fd, output_fd)
    fields = await _run(options, fds, output_fd, on_write, launcher, executor, on_report)
    return ExtractResult(**fields)


async def verify_archive(
    archive_fd: int,
    options: VerifyOptions,
    *,
    launcher: ArchiveProcessLauncher,
    executor: Executor,
) -> VerifyResult:
    """Hash the archive at ``archive_fd`` and test it whole in an archive process.

    ``archive_fd`` stays the caller's, who must not use it meanwhile (the file offset is
    shared). A damaged archive is a ``problem`` in the result, not an error; ``OSError``
    and ``ArchiveProcessCrashedError`` as for the other jobs.
    """
    fds = (archive_fd,)
    return VerifyResult(**await _run(options, fds, None, lambda _: None, launcher, executor))


async def _run(
    options: Options,
    fds: tuple[int, ...],
    owned: int | None,
    on_progress: Callable[[int], None],
    launcher: ArchiveProcessLauncher,
    executor: Executor,
    on_report: Reported | None = None,
) -> dict[str, Any]:
    """Hand ``options`` and ``fds`` to a child, then follow it to its result's fields."""
    process = await _start(launcher, executor, (options.to_json(), fds), owned=owned)
    return await _follow(process, on_progress, launcher, executor, on_report)


async def _start(
    launcher: ArchiveProcessLauncher,
    executor: Executor,
    job: tuple[bytes, tuple[int, ...]],
    *,
    owned: int | None,
) -> subprocess.Popen[bytes]:
    """The child that took ``job``; ``owned`` is closed once the child holds its copy.

    Starting a process from a large one blocks for a while: a worker thread does it, out
    of the event loop's way.
    """
    started = asyncio.get_running_loop().run_in_executor(executor, launcher.start, *job)
    try:
        return await asyncio.shield(started)
    except asyncio.CancelledError:
        # The start goes on in its thread: the descriptors must stay open (their numbers
        # not reused) until it is done, and whatever it started must not be left waiting.
        started.add_done_callback(lambda future: _abandon(future, owned))
        owned = None
        raise
    finally:
        if owned is not None:
            os.close(owned)


def _abandon(started: asyncio.Future[subprocess.Popen[bytes]], owned: int | None) -> None:
    if owned is not None:
        os.close(owned)
    if started.cancelled() or started.exception() is not None:
        return
    process = started.result()
    process.kill()
    if process.stdout is not None:
        process.stdout.close()
    threading.Thread(target=process.wait, daemon=True).start()


async def _follow(
    process: subprocess.Popen[bytes],
    on_progress: Callable[[int], None],
    launcher: ArchiveProcessLauncher,
    executor: Executor,
    on_report: Reported | None,
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    try:
        return await _relay(process, on_progress, executor, on_report)
    finally:
        # The next waiting process starts once this job is done: booting Python takes a
        # core for a while, which during the job would be taken from the tool.
        await asyncio.shield(loop.run_in_executor(executor, launcher.prepare))


async def _relay(
    process: subprocess.Popen[bytes],
    on_progress: Callable[[int], None],
    executor: Executor,
    on_report: Reported | None,
) -> dict[str, Any]:
    """The child's result fields, once it has exited; raises what its error line says."""
    assert process.stdout is not None
    loop = asyncio.get_running_loop()
    lines = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(lines), process.stdout
    )
    reported = 0
    outcome: dict[str, Any] | None = None
    try:
        async for line in lines:
            try:
                message = json.loads(line)
            except ValueError:  # cut short by a kill: treated as saying nothing
                continue
            if "read" in message:
                count = int(message["read"])
                if count > reported:
                    on_progress(count - reported)
                    reported = count
                if on_report is not None:
                    on_report(message)
            elif "busy" in message:
                on_progress(0)  # a sign of life, for the idle timeout
            else:
                outcome = message
    finally:
        transport.close()
    # Its stdout has ended: the child is exiting, and reaping it does not wait long.
    returncode = await asyncio.shield(loop.run_in_executor(executor, process.wait))
    if outcome is not None and "result" in outcome:
        result: dict[str, Any] = outcome["result"]
        return result
    if outcome is not None and "error" in outcome:
        raise decode_error(outcome["error"])
    raise ArchiveProcessCrashedError(
        errno.EIO, f"le processus d'archivage s'est arrêté (code {returncode})"
    )

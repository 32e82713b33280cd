"""Running a dump or restore tool under supervision.

The tool runs in its own process group (so a kill reaches anything it forks), dies with
the service when the platform allows it (``setpriv --pdeathsig``), and carries a marker in
its environment so a restarted service can find and kill what a crash left behind. Its
credentials reach it as a descriptor open in its process (``SecretFile``), never as a file
on disk that a crash could leave behind. Its stdout (dump) or stdin (restore) is a pipe
served by a worker coroutine, which hands the pipe to an archive process and follows its
progress, so compression and file I/O never run in the service's process; stderr is read
on the loop into a bounded tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import shutil
import signal
import subprocess
import threading
import time
from asyncio import Future
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from backup_api.dumpers.base import SecretFile, SecretPath, ToolCommand
from backup_api.jobs.markers import child_env
from backup_api.jobs.priority import set_session_niceness

PIPE_SIZE = 1 << 20
_SETPRIV = shutil.which("setpriv")
_STDBUF = shutil.which("stdbuf")
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


class ToolNotFoundError(Exception):
    def __init__(self, tool: str) -> None:
        self.tool = tool
        super().__init__(tool)


class FailureKind(StrEnum):
    """Why the supervisor stopped a tool (a tool that ended by itself has none)."""

    TIMEOUT = "timeout"
    CONNECT = "connect"
    IDLE = "idle"
    IO_ERROR = "io_error"


@dataclass
class Progress:
    """Advanced by the pipe's worker, watched by the supervisor (both on the event loop)."""

    last_activity: float = field(default_factory=time.monotonic)
    bytes: int = 0

    def advance(self, count: int) -> None:
        self.bytes += count
        self.last_activity = time.monotonic()


@dataclass(frozen=True)
class ProcessOutcome:
    returncode: int | None
    stderr_tail: str
    failure: FailureKind | None
    io_error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None and self.returncode == 0


#: Reads the tool's stdout (dump) or writes its stdin (restore) until done; owns the fd.
PipeWorker = Callable[[int, Progress], Awaitable[None]]


def resolve_tool(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolNotFoundError(Path(tool).name)
    return path


def open_secret(secret: SecretFile) -> int:
    """A descriptor from which the tool reads ``secret``; the caller closes it once the
    tool has started (the tool keeps its own copy, which dies with it)."""
    if secret.regular:
        fd = os.memfd_create("backup-api-secret", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            # libpq ignores a password file that its group or others may read.
            os.fchmod(fd, 0o600)
            _write_all(fd, secret.content)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
        except BaseException:
            os.close(fd)
            raise
        return fd
    read_fd, write_fd = os.pipe()
    try:
        # Written whole before the tool starts, so it reads up to the end without us:
        # non-blocking, so content larger than the pipe fails instead of hanging.
        os.set_blocking(write_fd, False)
        _write_all(write_fd, secret.content)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return read_fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def secret_path(fd: int) -> str:
    # Relative to the process that opens it: the tool's own copy of the descriptor (the
    # same number, through pass_fds). Opening a memfd there reads it from its start.
    return f"/proc/self/fd/{fd}"


def rendered(command: ToolCommand, fd: int | None) -> tuple[list[str], dict[str, str]]:
    """``command``'s argv and env with each ``SecretPath`` replaced by the secret's path."""
    path = secret_path(fd) if fd is not None else None

    def render(value: str | SecretPath) -> str:
        if isinstance(value, str):
            return value
        if path is None:
            raise ValueError("a secret path in a command without a secret")
        return value.prefix + path

    return [render(word) for word in command.argv], {
        key: render(value) for key, value in command.env.items()
    }


def dying_with_service(argv: list[str]) -> list[str]:
    """``argv`` wrapped so the process is killed when the service dies (``setpriv``)."""
    if _SETPRIV is None:
        return argv
    return [_SETPRIV, "--pdeathsig", "KILL", "--", *argv]


def _grow_pipe(fd: int) -> None:
    # Fewer, larger reads: each pipe's worth of output costs the reader a wake-up.
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_SIZE)


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _read_tail(stream: asyncio.StreamReader, limit: int) -> bytes:
    tail = bytearray()
    while chunk := await stream.read(65536):
        tail += chunk
        if len(tail) > limit:
            del tail[: len(tail) - limit]
    return bytes(tail)


async def run_tool(
    command: ToolCommand,
    *,
    worker: PipeWorker,
    direction: str,
    executor: Executor,
    marker: str,
    total_timeout: float,
    idle_timeout: float,
    stderr_limit: int,
    tool_nice: int = 0,
    poll_interval: float = 0.25,
) -> ProcessOutcome:
    """Run ``command`` with ``worker`` serving its stdout (``"out"``) or stdin (``"in"``).

    Success is decided by the caller from the exit code; this function kills and reaps the
    process on timeout, on inactivity, on a worker error and on cancellation.
    """
    if direction not in ("in", "out"):
        raise ValueError(direction)
    secret_fd = open_secret(command.secret) if command.secret is not None else None
    try:
        words, env = rendered(command, secret_fd)
        executable = resolve_tool(words[0])
    except BaseException:
        if secret_fd is not None:
            os.close(secret_fd)
        raise
    passed = () if secret_fd is None else (secret_fd,)
    argv = [executable, *words[1:]]
    if direction == "out" and _STDBUF is not None:
        # The tools write through stdio, a few KiB at a time into a pipe: a stdout buffer the
        # pipe's size turns many small reads into one, which keeps us at the tool's pace.
        argv = [_STDBUF, f"--output={PIPE_SIZE}", *argv]
    argv = dying_with_service(argv)

    try:
        read_fd, write_fd = os.pipe()
    except BaseException:
        _close_all(passed)
        raise
    child_fd, own_fd = (write_fd, read_fd) if direction == "out" else (read_fd, write_fd)
    _grow_pipe(write_fd)
    loop = asyncio.get_running_loop()
    # Started from a worker thread: starting a process from a large one blocks the caller
    # for a while (longer when the machine is busy), which on the event loop would be every
    # in-flight request's latency.
    spawn = loop.run_in_executor(
        executor,
        _start,
        argv,
        child_fd if direction == "in" else subprocess.DEVNULL,
        child_fd if direction == "out" else subprocess.DEVNULL,
        child_env(env, marker),
        passed,
    )
    try:
        process = await asyncio.shield(spawn)
    except asyncio.CancelledError:
        # The start goes on in its thread: the pipe stays open until it is done (its fd
        # numbers must not be reused meanwhile), then whatever it started is killed.
        spawn.add_done_callback(functools.partial(_discard_spawned, (read_fd, write_fd, *passed)))
        raise
    except BaseException:
        _close_all((read_fd, write_fd, *passed))
        raise
    # Our copy of the child's end must go, or the worker never sees EOF / EPIPE; the
    # secret's copy too: the tool holds its own, which nothing on disk outlives.
    _close_all((child_fd, *passed))
    if tool_nice:
        set_session_niceness(process.pid, tool_nice)

    # A restore tool reading its input to the end commits what it read (psql's
    # --single-transaction does on EOF): while this copy of the pipe's write end is open,
    # no end comes unless the worker finished. A worker that fails has the tool killed
    # first, so a refused or broken archive never applies half-way.
    input_hold = os.dup(own_fd) if direction == "in" else None
    progress = Progress()
    io_future = asyncio.ensure_future(worker(own_fd, progress))
    assert process.stderr is not None
    wait_task = _exit_future(process, loop)
    stderr_reader = asyncio.StreamReader()
    try:
        stderr_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stderr_reader), process.stderr
        )
    except BaseException:
        # Cancelled before supervision began: the tool must not outlive this call either
        # (a tool blocked on a lock would never end by itself, nor its archive process).
        kill_group(process.pid)
        if input_hold is not None:
            os.close(input_hold)
        await asyncio.shield(_reap(wait_task, io_future))
        raise
    stderr_task = asyncio.create_task(_read_tail(stderr_reader, stderr_limit))
    started = time.monotonic()
    failure: FailureKind | None = None
    io_error: BaseException | None = None

    try:
        pending: set[asyncio.Future[object]] = {wait_task, io_future}  # type: ignore[arg-type]
        while pending:
            done, pending = await asyncio.wait(
                pending, timeout=poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
            if io_future in done:
                if io_future.exception() is not None and failure is None:
                    io_error = io_future.exception()
                    failure = FailureKind.IO_ERROR
                    kill_group(process.pid)
                if input_hold is not None:
                    os.close(input_hold)
                    input_hold = None
            now = time.monotonic()
            if failure is None and process.returncode is None:
                first_output = command.first_output_timeout
                if (
                    first_output is not None
                    and progress.bytes == 0
                    and now - started > first_output
                ):
                    failure = FailureKind.CONNECT
                    kill_group(process.pid)
                elif now - started > total_timeout:
                    failure = FailureKind.TIMEOUT
                    kill_group(process.pid)
                elif now - progress.last_activity > idle_timeout:
                    failure = FailureKind.IDLE
                    kill_group(process.pid)
    except asyncio.CancelledError:
        kill_group(process.pid)
        await asyncio.shield(_reap(wait_task, io_future, stderr_task))
        raise
    finally:
        if process.returncode is None:
            kill_group(process.pid)
        if input_hold is not None:
            os.close(input_hold)

    stderr = await stderr_task
    stderr_transport.close()
    return ProcessOutcome(
        returncode=process.returncode,
        stderr_tail=stderr.decode("utf-8", errors="replace"),
        failure=failure,
        io_error=io_error,
    )


def _close_all(fds: tuple[int, ...]) -> None:
    for fd in fds:
        os.close(fd)


def _start(
    argv: list[str], stdin: int, stdout: int, env: dict[str, str], pass_fds: tuple[int, ...]
) -> subprocess.Popen[bytes]:
    # Its own session (and process group), so one signal reaches whatever the tool forks,
    # and a terminal's Ctrl-C does not. With the kernel's autogroup scheduling (on by
    # default), a session is also a scheduling group: the tool gets a share of the CPU of
    # its own instead of taking it from the service's group, where the event loop runs.
    return subprocess.Popen(
        argv,
        stdin=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=env,
        pass_fds=pass_fds,
        start_new_session=True,
    )


def _exit_future(process: subprocess.Popen[bytes], loop: asyncio.AbstractEventLoop) -> Future[int]:
    """Resolves with the exit status; a thread waits for it (as asyncio's own watcher does)."""
    future: Future[int] = loop.create_future()

    def deliver(code: int) -> None:
        if not future.done():
            future.set_result(code)

    def wait() -> None:
        code = process.wait()
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            loop.call_soon_threadsafe(deliver, code)

    threading.Thread(target=wait, name=f"wait-{process.pid}", daemon=True).start()
    return future


def _discard_spawned(fds: tuple[int, ...], spawn: Future[subprocess.Popen[bytes]]) -> None:
    _close_all(fds)
    if spawn.cancelled() or spawn.exception() is not None:
        return
    process = spawn.result()
    kill_group(process.pid)
    if process.stderr is not None:
        process.stderr.close()
    threading.Thread(target=process.wait, daemon=True).start()


async def _reap(*futures: asyncio.Future[Any]) -> None:
    await asyncio.gather(*futures, return_exceptions=True)

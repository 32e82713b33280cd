"""The service's end of an upload process (see ``uploader``): one backup's archive sent to
its S3 destinations, written by the archive process into a pipe that the upload process
reads. No archive byte passes through the service.

``S3Upload`` is used like a local ``ArchiveWriter``: ``fileno()`` is where the archive
goes; ``commit`` completes every destination that received it whole and says, per
destination, how it went; ``abort`` leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from backup_api.storage.s3.location import S3Location
from backup_api.storage.s3.uploader import DEFAULT_PART_SIZE

UPLOADER_MODULE = "backup_api.storage.s3.uploader"
NOT_STARTED = "le processus d'envoi n'a pas pu démarrer"
STOPPED = "le processus d'envoi s'est arrêté"
#: How long an upload process may take to leave after being told to abort.
ABORT_GRACE = 30.0
#: What the upload process's environment keeps of the service's (no credentials: the
#: locations come over the control socket).
_ENV_KEPT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "PYTHONPATH", "TZ", "TMPDIR")


class UploadTarget(NamedTuple):
    location: S3Location
    key: str
    manifest: dict[str, Any]


class CopyOutcome(NamedTuple):
    ok: bool
    size: int | None
    version_id: str | None
    retain_until: datetime | None
    error: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CopyOutcome:
        until = data.get("retain_until")
        return cls(
            ok=bool(data.get("ok")),
            size=data.get("size"),
            version_id=data.get("version_id"),
            retain_until=datetime.fromisoformat(until) if until else None,
            error=data.get("error"),
        )


def uploader_env(source: Mapping[str, str] | None = None) -> dict[str, str]:
    source = os.environ if source is None else source
    return {name: source[name] for name in _ENV_KEPT if name in source}


class S3Upload:
    """One backup's upload process, from start to commit or abort."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        control: socket.socket,
        write_fd: int | None,
        count: int,
    ) -> None:
        self.process = process
        self._control: socket.socket | None = control
        self._write_fd: int | None = write_fd
        self._count = count
        #: Per destination, as the process reported when its uploads started (a bucket
        #: that is missing shows here already).
        self.started: list[CopyOutcome] = []

    @classmethod
    async def start(
        cls,
        destinations: list[UploadTarget],
        part_size: int = DEFAULT_PART_SIZE,
        *,
        env: Mapping[str, str] | None = None,
        wrap: Callable[[list[str]], list[str]] = list,
        source_fd: int | None = None,
    ) -> S3Upload:
        """Start the upload process, hand it the job and the pipe's read end, and wait
        until each destination's multipart upload is started (or has failed).

        ``source_fd``: a complete archive file to send instead of a pipe (a copy sent again
        from another one); the process reads it from its current offset to its end, and
        the caller keeps its own descriptor."""
        upload = await asyncio.to_thread(cls._spawn, destinations, part_size, env, wrap, source_fd)
        try:
            line = await upload._line("started")
        except BaseException:
            await upload.abort()
            raise
        if line is None:
            await upload.abort()
            raise OSError(NOT_STARTED)
        upload.started = [CopyOutcome.from_json(item) for item in line]
        return upload

    @classmethod
    def _spawn(
        cls,
        destinations: list[UploadTarget],
        part_size: int,
        env: Mapping[str, str] | None,
        wrap: Callable[[list[str]], list[str]],
        source_fd: int | None = None,
    ) -> S3Upload:
        job = {
            "destinations": [
                {"location": t.location.to_json(), "key": t.key, "manifest": t.manifest}
                for t in destinations
            ],
            "part_size": part_size,
        }
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        if source_fd is None:
            read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        else:
            read_fd, write_fd = os.dup(source_fd), -1
        argv = [sys.executable, "-P", "-m", UPLOADER_MODULE, str(theirs.fileno())]
        try:
            process = subprocess.Popen(
                wrap(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
                env=uploader_env() if env is None else dict(env),
                start_new_session=True,
            )
        except BaseException:
            for fd in (read_fd, write_fd):
                if fd >= 0:
                    os.close(fd)
            ours.close()
            raise
        finally:
            theirs.close()
        upload = cls(process, ours, write_fd if write_fd >= 0 else None, len(destinations))
        try:
            socket.send_fds(ours, [json.dumps(job).encode() + b"\n"], [read_fd])
        except OSError:
            pass  # it died already: start() finds no "started" line
        finally:
            # Only the upload process reads the pipe: it alone holds the read end.
            os.close(read_fd)
        return upload

    def fileno(self) -> int:
        """The pipe's write end: the archive process writes the whole archive to it."""
        if self._write_fd is None:
            raise ValueError("upload already committed or aborted")
        return self._write_fd

    def close_writer(self) -> None:
        """Close the service's copy of the write end (the upload process then sees the
        pipe's end once the archive process has closed its own)."""
        fd, self._write_fd = self._write_fd, None
        if fd is not None:
            os.close(fd)

    async def _line(self, kind: str) -> Any:
        """The payload of the next ``kind`` line on the process's stdout, None at its end."""
        stdout = self.process.stdout
        assert stdout is not None
        while True:
            raw = await asyncio.to_thread(stdout.readline)
            if not raw:
                return None
            with contextlib.suppress(ValueError):
                message = json.loads(raw)
                if isinstance(message, dict) and kind in message:
                    return message[kind]

    async def commit(
        self, checksum: str, size: int, manifest: dict[str, Any] | None = None
    ) -> list[CopyOutcome]:
        """Complete every destination that received ``size`` bytes; per destination, in
        order, whether it holds the archive now. Call once the archive is written.
        ``manifest``: fields of the manifest known only now (the dump's size)."""
        self.close_writer()
        try:
            uploaded = await self._line("uploaded")
            if uploaded is None:
                return await self._stopped()
            self._send({"commit": {"checksum": checksum, "size": size, "manifest": manifest or {}}})
            results = await self._line("results")
            if results is None:
                return await self._stopped()
            await asyncio.to_thread(self.process.wait)
            return [CopyOutcome.from_json(item) for item in results]
        except BaseException:
            await self.abort()
            raise
        finally:
            self._close()
            if self.process.returncode is not None and self.process.stdout is not None:
                self.process.stdout.close()

    async def _stopped(self) -> list[CopyOutcome]:
        await self.abort()
        return [CopyOutcome(False, None, None, None, STOPPED)] * self._count

    def _send(self, command: dict[str, Any]) -> None:
        if self._control is None:
            raise OSError(STOPPED)
        self._control.sendall(json.dumps(command).encode() + b"\n")

    async def abort(self) -> None:
        """Abort every destination's upload; idempotent. The process aborts its uploads on
        the command (or the control socket's end) and exits; killed if it does not."""
        self.close_writer()
        if self.process.returncode is None and self._control is not None:
            with contextlib.suppress(OSError):
                self._send({"abort": True})
        self._close()
        try:
            await asyncio.wait_for(asyncio.to_thread(self.process.wait), ABORT_GRACE)
        except TimeoutError:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def _close(self) -> None:
        control, self._control = self._control, None
        if control is not None:
            control.close()

"""The upload process: one archive, read once from a pipe, sent to every S3 destination of
a backup at the same time as multipart uploads.

Started as ``python -P -m backup_api.storage.s3.uploader CONTROL_FD`` (see ``upload``). The
service sends over the control socket (a unix socket) one JSON line, the job
``{"destinations": [{"location", "key", "manifest"}], "part_size"}``, with the read end of
the pipe the archive process writes to (``socket.send_fds``). Locations, secrets included,
travel only there: never in argv or the environment.

The process then:

- starts one multipart upload per destination (under Object Lock, COMPLIANCE until
  ``object_lock_days`` from now, when the location asks for it) and reports
  ``{"started": [outcome, ...]}`` on stdout;
- reads the pipe in parts and uploads each part to every destination still going; a
  destination that fails is dropped and the others go on. The pipe is read to its end
  whatever happens, so the archive writer never blocks on it;
- at the pipe's end reports ``{"uploaded": [outcome, ...]}`` and waits for a command on
  the control socket: ``{"commit": {"checksum", "size", "manifest"}}`` completes each upload
  whose size matches, writes its manifest (checksum, size and what ``manifest`` adds, known
  only once the archive is made, filled in) and reports
  ``{"results": [outcome, ...]}``; ``{"abort": true}``, the control socket's end (the
  service is gone) or SIGTERM abort every upload. Nothing is left half-written in a
  bucket: an object exists under its key only once completed.

An outcome is ``{"ok", "size", "version_id", "retain_until", "error"}``; errors are French
and secret-free. ``ok`` with an ``error`` after a commit: the archive is complete under its
key but something after it failed (its manifest, its retention), which ``error`` names.

Memory: at most two parts are held at once (``_SLOTS``): one being read from the pipe
while the previous one is being uploaded; the reader waits for a free slot.

No botocore client here (``rest`` makes the few calls): a client's service model would
weigh more than the rest of the process.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from backup_api.storage.s3.location import S3Location
from backup_api.storage.s3.manifest import encode_manifest, manifest_key
from backup_api.storage.s3.rest import S3RequestError, S3RestClient

MIN_PART_SIZE = 5 * 1024 * 1024
DEFAULT_PART_SIZE = 8 * 1024 * 1024
#: S3's limit on the parts of one upload.
MAX_PARTS = 10_000
#: Parts in memory at once: one being read, one being uploaded.
_SLOTS = 2
MAX_JOB_BYTES = 1 << 20
TOO_LARGE = "archive trop grande pour la taille des parts"
SIZE_MISMATCH = "la taille envoyée ne correspond pas à celle de l'archive"
ABORTED = "envoi annulé"


class _Destination:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.location = S3Location.from_json(spec["location"])
        self.key: str = spec["key"]
        self.manifest: dict[str, Any] = dict(spec.get("manifest") or {})
        self.session: S3RestClient | None = None
        self.upload_id: str | None = None
        self.parts: list[tuple[int, str]] = []
        self.size = 0
        self.retain_until: datetime | None = None
        self.version_id: str | None = None
        self.error: str | None = None
        self.done = False

    @property
    def going(self) -> bool:
        return self.error is None and self.upload_id is not None

    def fail(self, exc: BaseException | str) -> None:
        if self.error is None:
            self.error = exc if isinstance(exc, str) else _reason(exc)

    def outcome(self) -> dict[str, Any]:
        return {
            "ok": self.error is None and (self.done or self.upload_id is not None),
            "size": self.size,
            "version_id": self.version_id,
            "retain_until": self.retain_until.isoformat() if self.retain_until else None,
            "error": self.error,
        }

    def start(self) -> None:
        try:
            self.session = S3RestClient(self.location)
            if self.location.object_lock_days:
                until = datetime.now(UTC) + timedelta(days=self.location.object_lock_days)
                self.retain_until = until.replace(microsecond=0)
            self.upload_id = self.session.create_multipart_upload(self.key, self.retain_until)
        except (S3RequestError, OSError, ValueError) as exc:
            self.fail(exc)

    def upload(self, number: int, data: bytearray) -> None:
        assert self.session is not None
        assert self.upload_id is not None
        try:
            # S3 wants Content-MD5 (or a checksum) on writes under Object Lock.
            etag = self.session.upload_part(
                self.key, self.upload_id, number, data, bool(self.location.object_lock_days)
            )
        except (S3RequestError, OSError) as exc:
            self.fail(exc)
            self.abort()
            return
        self.parts.append((number, etag))
        self.size += len(data)

    def commit(self, checksum: str, size: int, details: dict[str, Any]) -> None:
        if not self.going:
            return
        if size != self.size:
            self.fail(SIZE_MISMATCH)
            self.abort()
            return
        assert self.session is not None
        assert self.upload_id is not None
        try:
            version_id = self.session.complete_multipart_upload(
                self.key, self.upload_id, self.parts
            )
        except (S3RequestError, OSError) as exc:
            self.fail(exc)
            self.abort()
            return
        self.done = True
        self.upload_id = None
        self.version_id = version_id
        if self.retain_until is not None and not self._lock_version():
            return
        self.manifest.update(details)
        self.manifest.update(checksum=checksum, size=size)
        try:
            self.session.put_object(
                manifest_key(self.key),
                encode_manifest(self.manifest),
                "application/json",
                self.retain_until,
            )
        except Exception as exc:
            # The archive is complete and usable; only the bucket's own record of it is
            # missing. Reported so the service can say so, the copy stays.
            self.error = f"manifeste non écrit: {_reason(exc)}"

    def _lock_version(self) -> bool:
        """Set the completed version's retention as well: the lock asked for at the
        upload's creation is not applied by every S3-compatible server (moto, some older
        ones), and a copy said to be locked must be."""
        assert self.session is not None
        assert self.retain_until is not None
        try:
            self.session.put_object_retention(self.key, self.version_id, self.retain_until)
        except (S3RequestError, OSError) as exc:
            self.error = f"verrouillage non appliqué: {_reason(exc)}"
            return False
        return True

    def abort(self) -> None:
        """Abort the upload; twice when a part may still have been in flight (S3 says
        such a part can land after a first abort)."""
        upload_id, self.upload_id = self.upload_id, None
        if upload_id is None or self.session is None:
            return
        for _ in range(2):
            with contextlib.suppress(S3RequestError, OSError):
                self.session.abort_multipart_upload(self.key, upload_id)


def _reason(exc: BaseException) -> str:
    """The owner's French reason for a failed call, secret-free."""
    if isinstance(exc, S3RequestError):
        return str(exc)
    if isinstance(exc, OSError):
        return "stockage injoignable"
    return f"erreur du stockage: {type(exc).__name__}"


class _Uploader:
    def __init__(self, job: dict[str, Any], pipe_fd: int, control: socket.socket) -> None:
        self.destinations = [_Destination(spec) for spec in job["destinations"]]
        self.part_size = max(MIN_PART_SIZE, int(job.get("part_size") or DEFAULT_PART_SIZE))
        self.pipe_fd = pipe_fd
        self.control = control
        # Everything the main thread waits for: parts, the pipe's end, commands.
        self.events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.slots = threading.Semaphore(_SLOTS)
        self.aborting = threading.Event()

    def report(self, kind: str, payload: Any) -> None:
        sys.stdout.write(json.dumps({kind: payload}) + "\n")
        sys.stdout.flush()

    def outcomes(self) -> list[dict[str, Any]]:
        return [destination.outcome() for destination in self.destinations]

    # ---------------------------------------------------------------- threads

    def read_pipe(self) -> None:
        """Hand the pipe's content to the main thread in parts, then ("eof", None)."""
        number = 0
        while True:
            # A free slot first: never more than ``_SLOTS`` parts in memory.
            while not self.slots.acquire(timeout=0.5):
                if self.aborting.is_set():
                    return
            buffer = bytearray(self.part_size)
            view = memoryview(buffer)
            filled = 0
            while filled < self.part_size:
                count = os.readv(self.pipe_fd, [view[filled:]])
                if count == 0:
                    break
                filled += count
            view.release()
            if filled < self.part_size:
                del buffer[filled:]
            if filled or number == 0:
                number += 1
                self.events.put(("part", (number, buffer)))
            else:
                self.slots.release()
            if filled < self.part_size:
                self.events.put(("eof", None))
                return

    def read_control(self) -> None:
        """Commands from the service; its socket's end means it is gone: abort."""
        with contextlib.suppress(OSError), self.control.makefile("rb") as lines:
            for line in lines:
                try:
                    command = json.loads(line)
                except ValueError:
                    break
                if "commit" in command:
                    self.events.put(("commit", command["commit"]))
                else:
                    break
        self.aborting.set()
        self.events.put(("abort", None))

    # ---------------------------------------------------------------- main thread

    def run(self) -> int:
        try:
            return self._run()
        except BaseException:
            # Whatever went wrong here (the service's end of stdout gone, a malformed
            # command), no upload is left open behind this process.
            with contextlib.suppress(BaseException):
                for destination in self.destinations:
                    destination.abort()
            raise

    def _run(self) -> int:
        for destination in self.destinations:
            destination.start()
        self.report("started", self.outcomes())
        threading.Thread(target=self.read_control, daemon=True).start()
        threading.Thread(target=self.read_pipe, daemon=True).start()
        commit: dict[str, Any] | None = None
        at_end = False
        while True:
            kind, payload = self.events.get()
            if kind == "abort" or self.aborting.is_set():
                return self.abort()
            if kind == "part":
                number, data = payload
                self.upload_part(number, data)
                # Drop every reference before the slot goes back to the reader.
                del payload, data
                self.slots.release()
            elif kind == "eof":
                at_end = True
                self.report("uploaded", self.outcomes())
            elif kind == "commit":
                commit = payload
            if at_end and commit is not None:
                for destination in self.destinations:
                    details = commit.get("manifest")
                    destination.commit(
                        str(commit["checksum"]),
                        int(commit["size"]),
                        details if isinstance(details, dict) else {},
                    )
                self.report("results", self.outcomes())
                return 0

    def upload_part(self, number: int, data: bytearray) -> None:
        for destination in self.destinations:
            if not destination.going:
                continue
            if number > MAX_PARTS:
                destination.fail(TOO_LARGE)
                destination.abort()
                continue
            destination.upload(number, data)
            if self.aborting.is_set():
                return

    def abort(self) -> int:
        self.aborting.set()
        for destination in self.destinations:
            destination.fail(ABORTED)
            destination.abort()
        self.report("aborted", self.outcomes())
        return 0


def _receive_job(control: socket.socket) -> tuple[dict[str, Any], int]:
    data, fds, _flags, _address = socket.recv_fds(control, MAX_JOB_BYTES, 1)
    while not data.endswith(b"\n"):
        more = control.recv(MAX_JOB_BYTES)
        if not more:
            raise SystemExit("control socket closed before the job")
        data += more
    if len(fds) != 1:
        raise SystemExit("the job came without its pipe")
    job: dict[str, Any] = json.loads(data)
    return job, fds[0]


def main(argv: list[str]) -> int:
    control = socket.socket(fileno=int(argv[1]))
    job, pipe_fd = _receive_job(control)
    uploader = _Uploader(job, pipe_fd, control)

    def on_term(_signum: int, _frame: object) -> None:
        # SimpleQueue.put may be called from a signal handler.
        uploader.aborting.set()
        uploader.events.put(("abort", None))

    signal.signal(signal.SIGTERM, on_term)
    code = uploader.run()
    sys.stdout.flush()
    # Daemon threads may still block on the pipe or the socket: leave without them.
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

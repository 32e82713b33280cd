"""What the service and an archive process say to each other.

A job goes to the child as one message on its control socket: its options as JSON (with a
``kind``), and its descriptors alongside (``SCM_RIGHTS``). The child then writes one JSON
object per line on its stdout:

- ``{"read": n, ...}``: n bytes of SQL handled so far, read from the dump or written to
  the restore tool (on the first, then at most every ``REPORT_INTERVAL``), with the other
  side's count: ``"written"``, the archive's bytes written (a backup), or ``"consumed"``,
  how far into the archive the extraction is (a restore);
- ``{"busy": true}``: still at work with nothing to count yet (a restore's archive being
  hashed), at most every ``REPORT_INTERVAL``;
- ``{"result": {...}}``: the job is done (the fields of ``ArchiveResult``,
  ``ExtractResult`` or ``VerifyResult``), or
- ``{"error": {"kind": ..., "message": ..., "errno": ...}}``: it is not, and why.

Both ends import this module, so it follows the child's import rule (see ``child``).
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from backup_api.archiving.archive import ArchiveError, ArchiveResult, Compression
from backup_api.storage.base import DISK_FULL, FULL_ERRNOS, StorageFullError

REPORT_INTERVAL = 0.1
MAX_JOB_BYTES = 64 * 1024
# Bounds an error line well under PIPE_BUF, so it is written in one piece.
MAX_MESSAGE = 1024
#: scrypt work factor (log2 N) of passphrase-encrypted archives: what ``age -p`` writes.
SCRYPT_LOG_N = 18


class AgeKeys(NamedTuple):
    """The age keys of a job: to encrypt (``recipients``, or ``passphrase`` with its
    scrypt work factor) or to decrypt (``identities``, or ``passphrase``). The secrets
    travel in the job's message on the control socket only, never in argv or the
    environment, and stay out of ``repr``."""

    recipients: tuple[str, ...] = ()
    identities: tuple[str, ...] = ()
    passphrase: str | None = None
    scrypt_log_n: int = SCRYPT_LOG_N

    def __repr__(self) -> str:
        return f"AgeKeys(recipients={self.recipients!r}, secrets=***)"

    def to_values(self) -> dict[str, Any]:
        return {
            "recipients": list(self.recipients),
            "identities": list(self.identities),
            "passphrase": self.passphrase,
            "scrypt_log_n": self.scrypt_log_n,
        }

    @classmethod
    def from_values(cls, values: Mapping[str, Any] | None) -> AgeKeys | None:
        if values is None:
            return None
        passphrase = values.get("passphrase")
        return cls(
            recipients=tuple(str(r) for r in values.get("recipients", ())),
            identities=tuple(str(i) for i in values.get("identities", ())),
            passphrase=None if passphrase is None else str(passphrase),
            scrypt_log_n=int(values.get("scrypt_log_n", SCRYPT_LOG_N)),
        )


class ArchiveOptions(NamedTuple):
    """A backup's job: the ZIP entry to write and how, the process's niceness, how
    many outputs receive the archive (one per destination writer: a staged local file, a
    pipe to an upload process), and the age keys it is encrypted to (None: a plain ZIP)."""

    entry_name: str
    compression: Compression
    level: int
    date_time: datetime
    readahead_mib: int
    nice: int
    outputs: int = 1
    encryption: AgeKeys | None = None
    #: The database type whose dump's rows are counted per table (see ``rowcount``);
    #: None: not counted.
    count_rows: str | None = None

    def to_json(self) -> bytes:
        values = {
            "kind": "archive",
            "entry_name": self.entry_name,
            "compression": self.compression.value,
            "level": self.level,
            "date_time": self.date_time.isoformat(),
            "readahead_mib": self.readahead_mib,
            "nice": self.nice,
            "outputs": self.outputs,
            "encryption": None if self.encryption is None else self.encryption.to_values(),
            "count_rows": self.count_rows,
        }
        return json.dumps(values).encode()

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> ArchiveOptions:
        return cls(
            entry_name=str(values["entry_name"]),
            compression=Compression(values["compression"]),
            level=int(values["level"]),
            date_time=datetime.fromisoformat(values["date_time"]),
            readahead_mib=int(values["readahead_mib"]),
            nice=int(values["nice"]),
            outputs=int(values.get("outputs", 1)),
            encryption=AgeKeys.from_values(values.get("encryption")),
            count_rows=None if values.get("count_rows") is None else str(values["count_rows"]),
        )


class ExtractOptions(NamedTuple):
    """A restore's job: the archive's expected SHA-256 (None: not checked), the backup's
    database type (whose dump tool's SQL alone is accepted) and niceness; for an
    ``encrypted`` archive (age), the keys that open it."""

    expected_sha256: str | None
    db_type: str
    nice: int
    encrypted: bool = False
    keys: AgeKeys | None = None

    def to_json(self) -> bytes:
        return _checks_json("extract", self)

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> ExtractOptions:
        return cls(*_checks_from(values))


class VerifyOptions(NamedTuple):
    """A verification's job: the same checks as a restore's. An encrypted archive
    without ``keys`` (encrypted to recipients: the service has no identity) gets what
    can be checked without them: its SHA-256 and its age structure."""

    expected_sha256: str | None
    db_type: str
    nice: int
    encrypted: bool = False
    keys: AgeKeys | None = None

    def to_json(self) -> bytes:
        return _checks_json("verify", self)

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> VerifyOptions:
        return cls(*_checks_from(values))


def _checks_json(kind: str, options: ExtractOptions | VerifyOptions) -> bytes:
    values = {
        "kind": kind,
        "expected_sha256": options.expected_sha256,
        "db_type": options.db_type,
        "nice": options.nice,
        "encrypted": options.encrypted,
        "keys": None if options.keys is None else options.keys.to_values(),
    }
    return json.dumps(values).encode()


def _checks_from(values: Mapping[str, Any]) -> tuple[str | None, str, int, bool, AgeKeys | None]:
    expected = values["expected_sha256"]
    return (
        None if expected is None else str(expected),
        str(values["db_type"]),
        int(values["nice"]),
        bool(values.get("encrypted", False)),
        AgeKeys.from_values(values.get("keys")),
    )


class ExtractResult(NamedTuple):
    written: int  # bytes of SQL the restore tool accepted
    complete: bool  # False: the tool stopped reading first (its exit code says why)


class VerifyResult(NamedTuple):
    sha256: str  # of the archive file as it is now
    problem: str | None  # why a restore would refuse it (French), None if sound
    # False: an encrypted archive checked without its keys (SHA-256 and age structure
    # only; the ZIP inside was not read).
    contents_checked: bool = True


Options = ArchiveOptions | ExtractOptions | VerifyOptions
#: A job's "kind": how its options are read.
JOBS: dict[str, Callable[[Mapping[str, Any]], Options]] = {
    "archive": ArchiveOptions.from_values,
    "extract": ExtractOptions.from_values,
    "verify": VerifyOptions.from_values,
}
#: The most outputs an archive job may have (one per destination of a backup).
MAX_OUTPUTS = 64


def descriptor_count(options: Options) -> int:
    """How many descriptors come with a job: the dump's pipe and each output (archive),
    the archive and the restore tool's stdin (extract), the archive (verify)."""
    if isinstance(options, ArchiveOptions):
        return 1 + options.outputs
    return 2 if isinstance(options, ExtractOptions) else 1


class ArchiveOutcome(NamedTuple):
    """An archive job's result: the archive's, and for each output the error that put it
    out of the job (None: it received the whole archive). The job fails only when every
    output failed; the others still hold the complete archive."""

    archive: ArchiveResult
    output_errors: tuple[Exception | None, ...]
    #: Each table's rows as dumped (``ArchiveOptions.count_rows``), else None.
    table_rows: dict[str, int] | None = None


class ArchiveProcessCrashedError(OSError):
    """The archive process ended without saying how (killed, or a crash)."""


def encode_error(exc: BaseException) -> dict[str, object]:
    """The child's error line for ``exc``; ``decode_error`` turns it back."""
    if isinstance(exc, ArchiveError):
        return {"kind": "archive", "message": str(exc)[:MAX_MESSAGE]}
    if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
        return {"kind": "storage_full", "message": DISK_FULL, "errno": exc.errno}
    if isinstance(exc, OSError):
        return {"kind": "os", "message": (exc.strerror or "")[:MAX_MESSAGE], "errno": exc.errno}
    return {"kind": "internal", "message": ""}


def decode_error(error: Mapping[str, object]) -> Exception:
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

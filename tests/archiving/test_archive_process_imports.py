"""The archive process's import rule (see ``backup_api.archiving.child``): jobs run in
children started as the service starts them, under ``python -X importtime``, and every
module they import must be allowed. Fails when someone adds, say, an ORM import there."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from backup_api.archiving.agecrypt import AgeDecryptingReader, generate_identity
from backup_api.archiving.archive import Compression
from backup_api.archiving.launcher import (
    ArchiveProcessLauncher,
    extract_archive,
    verify_archive,
    write_archive,
)
from backup_api.archiving.protocol import AgeKeys, ArchiveOptions, ExtractOptions, VerifyOptions
from backup_api.jobs.markers import child_env
from backup_api.jobs.supervisor import dying_with_service

#: The project's modules the child may import (packages' ``__init__`` included).
ALLOWED_OWN = {
    "backup_api",
    "backup_api.archiving",
    "backup_api.archiving.agecrypt",
    "backup_api.archiving.archive",
    "backup_api.archiving.child",
    "backup_api.archiving.protocol",
    "backup_api.archiving.readahead",
    "backup_api.archiving.rowcount",
    "backup_api.archiving.sqlguard",
    "backup_api.jobs",
    "backup_api.jobs.priority",
    "backup_api.storage",
    "backup_api.storage.base",
}
#: Third-party packages the child may import: the compressor, and for encrypted jobs only
#: the primitives of the age format (cryptography loads its cffi backend).
ALLOWED_THIRD_PARTY = {"isal", "cryptography", "_cffi_backend"}
#: What a plain job must not import (encrypted ones alone pay for them).
ENCRYPTION_ONLY = {"backup_api.archiving.agecrypt", "cryptography"}

SQL = b"-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu\n" + (
    b"INSERT INTO t VALUES (1, 'row');\n" * 20_000
)


def imported(log: Path) -> set[str]:
    """The modules named in ``-X importtime`` lines (``import time: self | cumulative |
    name``, the name indented by its depth)."""
    names = set()
    for line in log.read_text().splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    return names


def under_importtime(log: Path):  # type: ignore[no-untyped-def]
    """A launcher ``wrap`` that runs the production command (made to die with the
    service, as the service does) under ``-X importtime``, its report appended to ``log``."""

    def wrap(argv: list[str]) -> list[str]:
        python, *rest = argv
        command = dying_with_service([python, "-X", "importtime", *rest])
        return ["sh", "-c", 'exec "$@" 2>>"$0"', str(log), *command]

    return wrap


def baseline(log: Path, env: dict[str, str]) -> set[str]:
    """What the interpreter imports by itself (``site`` and what ``.pth`` files load)."""
    command = [sys.executable, "-X", "importtime", "-P", "-c", "pass"]
    with log.open("wb") as report:
        subprocess.run(command, env=env, stderr=report, check=True)
    return imported(log)


def read_all(fd: int) -> bytes:
    with open(fd, "rb") as pipe:
        return pipe.read()


async def run_every_kind_of_job(
    tmp_path: Path,
    launcher: ArchiveProcessLauncher,
    encrypt: AgeKeys | None = None,
    decrypt: AgeKeys | None = None,
) -> None:
    encrypted = encrypt is not None
    with ThreadPoolExecutor(2) as executor:
        archive_path = tmp_path / ("a.zip.age" if encrypted else "a.zip")
        read_fd, write_fd = os.pipe()
        with open(write_fd, "wb") as pipe:  # fits the pipe: written before the child reads
            pipe.write(SQL[: 60 * 1024])
        fd = os.open(archive_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            options = ArchiveOptions(
                "a.sql", Compression.ISAL, 1, datetime(2026, 11, 28), 1, 0, encryption=encrypt
            )
            await write_archive(
                read_fd, [fd], options, on_read=lambda _: None, launcher=launcher, executor=executor
            )
        finally:
            os.close(fd)
        if decrypt is None:
            assert zipfile.ZipFile(archive_path).read("a.sql") == SQL[: 60 * 1024]
        else:
            with archive_path.open("rb") as stored:
                plain = AgeDecryptingReader(stored, identities=list(decrypt.identities))
                assert zipfile.ZipFile(plain).read("a.sql") == SQL[: 60 * 1024]
        sha256 = hashlib.sha256(archive_path.read_bytes()).hexdigest()
        for keys in (None, decrypt) if encrypted else (None,):
            with archive_path.open("rb") as handle:
                checks = VerifyOptions(sha256, "mysql", 0, encrypted=encrypted, keys=keys)
                result = await verify_archive(
                    handle.fileno(), checks, launcher=launcher, executor=executor
                )
                assert result.problem is None
        read_fd, write_fd = os.pipe()
        with archive_path.open("rb") as handle:
            reading = asyncio.get_running_loop().run_in_executor(executor, read_all, read_fd)
            await extract_archive(
                handle.fileno(),
                write_fd,
                ExtractOptions(sha256, "mysql", 0, encrypted=encrypted, keys=decrypt),
                on_write=lambda _: None,
                launcher=launcher,
                executor=executor,
            )
            assert await reading == SQL[: 60 * 1024]


def imports_of_jobs(
    tmp_path: Path, encrypt: AgeKeys | None = None, decrypt: AgeKeys | None = None
) -> set[str]:
    log = tmp_path / "importtime.log"
    env = child_env({}, "import-rule-test")
    launcher = ArchiveProcessLauncher(env, wrap=under_importtime(log))
    try:
        asyncio.run(run_every_kind_of_job(tmp_path, launcher, encrypt, decrypt))
    finally:
        launcher.close()
    return imported(log)


def test_plain_jobs_import_nothing_of_encryption(tmp_path: Path) -> None:
    modules = imports_of_jobs(tmp_path)
    assert "backup_api.archiving.protocol" in modules
    assert {name.split(".")[0] for name in modules} & {"cryptography"} == set()
    assert "backup_api.archiving.agecrypt" not in modules


def test_the_archive_process_imports_only_what_its_rule_allows(tmp_path: Path) -> None:
    identity, recipient = generate_identity()
    (tmp_path / "encrypted").mkdir()
    modules = imports_of_jobs(tmp_path) | imports_of_jobs(
        tmp_path / "encrypted", AgeKeys(recipients=(recipient,)), AgeKeys(identities=(identity,))
    )
    # The jobs really ran under the report (the child runs as ``__main__``).
    assert {"backup_api.archiving.protocol", "backup_api.archiving.sqlguard", "isal"} <= modules
    assert modules >= ENCRYPTION_ONLY
    allowed_anyway = baseline(tmp_path / "baseline.log", child_env({}, "import-rule-test"))
    stdlib = sys.stdlib_module_names
    forbidden = sorted(
        name
        for name in modules - allowed_anyway
        if name.split(".")[0] not in stdlib
        and name not in ALLOWED_OWN
        and name.split(".")[0] not in ALLOWED_THIRD_PARTY
    )
    assert forbidden == []

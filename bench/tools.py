"""The dump tools run bare (the baseline every API backup is compared with), and the check
every archive gets, on disk or in the benchmark's S3 server."""

from __future__ import annotations

import os
import subprocess
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.servers import DbServer, mysql_option_value, pgpass_escape
from tests.support.servers.seaweedfs import SeaweedFSServer

from backup_api.archiving.rowcount import row_counter


@dataclass
class Credentials:
    """The bare tools' password files (0600), as the service's own tools would read them."""

    workdir: Path
    server: DbServer

    def pg_env(self) -> dict[str, str]:
        passfile = self.workdir / "pgpass"
        if not passfile.exists():
            passfile.write_text(f"*:*:*:*:{pgpass_escape(self.server.password)}\n")
            passfile.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGPASSFILE"] = str(passfile)
        return env

    def my_defaults(self) -> Path:
        path = self.workdir / "my.cnf"
        if not path.exists():
            path.write_text(
                f'[client]\nuser="{self.server.user}"\n'
                f"password={mysql_option_value(self.server.password)}\n"
                f"host={self.server.host}\nport={self.server.port}\nprotocol=TCP\n"
            )
            path.chmod(0o600)
        return path


def pg_dump_argv(server: DbServer, name: str) -> list[str]:
    return [
        "pg_dump",
        "--no-password",
        "--format=plain",
        # The service's own options, so that the bare dump is byte for byte what it archives.
        "--encoding=UTF8",
        "--clean",
        "--if-exists",
        "--no-owner",
        "--no-privileges",
        "-h",
        server.host,
        "-p",
        str(server.port),
        "-U",
        server.user,
        "-d",
        name,
    ]


def mysqldump_argv(defaults: Path, name: str) -> list[str]:
    return [
        "mysqldump",
        f"--defaults-extra-file={defaults}",
        "--single-transaction",
        "--quick",
        "--hex-blob",
        "--triggers",
        "--routines",
        "--events",
        "--no-tablespaces",
        "--skip-dump-date",
        "--",
        name,
    ]


def timed(argv: list[str], env: dict[str, str], shell_tail: str | None = None) -> float:
    began = time.perf_counter()
    if shell_tail is None:
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    else:
        command = " ".join(f"'{a}'" for a in argv) + " | " + shell_tail
        subprocess.run(["bash", "-o", "pipefail", "-c", command], env=env, check=True)
    return time.perf_counter() - began


def counting_seconds(
    argv: list[str], env: dict[str, str], engine: str
) -> tuple[float, dict[str, int]]:
    """What counting each table's rows (``table_rows``) costs on this dump: the time the
    archive process's counter takes over the dump's bytes, fed in its 1 MiB chunks (the
    reads themselves not counted, the archive process makes them anyway), and the counts."""
    counter = row_counter(engine)
    assert counter is not None
    spent = 0.0
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        while chunk := process.stdout.read(1 << 20):
            began = time.perf_counter()
            counter.feed(chunk)
            spent += time.perf_counter() - began
    if process.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({process.returncode})")
    return spent, counter.tables


def dump_size(argv: list[str], env: dict[str, str]) -> int:
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        total = 0
        while chunk := process.stdout.read(1 << 20):
            total += len(chunk)
    return total


#: pg_dump (15.14 and later) opens and closes a plain dump with these lines, each with a
#: key drawn at random for every dump: two dumps of the same data differ there only.
RESTRICT_PREFIXES = (b"\\restrict ", b"\\unrestrict ")


def unkeyed_size(lines: Iterable[bytes]) -> int:
    """Bytes of a dump, its ``\\restrict`` / ``\\unrestrict`` key lines left out."""
    return sum(len(line) for line in lines if not line.startswith(RESTRICT_PREFIXES))


def bare_unkeyed_size(argv: list[str], env: dict[str, str]) -> int:
    """The bare dump's bytes, key lines left out."""
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        return unkeyed_size(process.stdout)


def archived_dump(path: Path) -> tuple[int, int]:
    """The dump inside a ZIP archive: its size as the ZIP records it, and its bytes with
    the key lines left out (read back, decompressed)."""
    with zipfile.ZipFile(path) as archive:
        (entry,) = archive.infolist()
        with archive.open(entry) as dump:
            return entry.file_size, unkeyed_size(dump)


def check_archive(path: Path) -> None:
    result = subprocess.run(["unzip", "-tq", str(path)], capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"unzip -t failed for {path}: {result.stdout!r}")
    with zipfile.ZipFile(path) as archive:
        if archive.testzip() is not None:
            raise RuntimeError(f"zipfile.testzip failed for {path}")


@dataclass
class Archives:
    """Every archive the run made, checked at the end: files of the service's backup root,
    and objects (``s3://bucket/key``, a backup's ``filepath`` when it has no local copy)
    read back from the S3 server with an independent client."""

    local: list[Path] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)

    def add(self, location: str) -> None:
        if location.startswith("s3://"):
            self.remote.append(location)
        else:
            self.local.append(Path(location))

    def __len__(self) -> int:
        return len(self.local) + len(self.remote)

    def check(self, s3: SeaweedFSServer | None, workdir: Path) -> None:
        for path in self.local:
            check_archive(path)
        for location in self.remote:
            if s3 is None:
                raise RuntimeError(f"no S3 server to read {location} from")
            bucket, key = location.removeprefix("s3://").split("/", 1)
            path = s3.download(bucket, key, workdir / "from-s3.zip")
            try:
                check_archive(path)
            finally:
                path.unlink(missing_ok=True)

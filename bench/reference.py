"""``--compare REV``: another revision of the service run beside this one, and one
database's API backups alternated between the two."""

from __future__ import annotations

import statistics
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

from tests.support.serverproc import ServerProcess
from tests.support.servers import DbServer

from bench.client import Api
from bench.measure import BusyCpu
from bench.tools import Archives

ROOT = Path(__file__).resolve().parent.parent


class Reference:
    """Another revision of the service (``--compare REV``), run beside this one.

    Its code is checked out in a git worktree and put first on ``PYTHONPATH`` (the
    installed dependencies are shared), its service gets its own metadata and archives.
    Each measurement alternates the two, so both see the same machine: on a host whose
    speed drifts, that is what compares two designs.
    """

    def __init__(self, revision: str, workdir: Path, settings: dict[str, str]) -> None:
        self.revision = revision
        self.checkout = workdir / "reference"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(self.checkout), revision],
            check=True,
            capture_output=True,
        )
        self.service = ServerProcess(workdir / "reference-service", log_level="warning", **settings)
        self.service.env["PYTHONPATH"] = str(self.checkout / "src")
        self.service.workdir.mkdir()
        self.service.start()
        assert self.service.process is not None
        self.pid = self.service.process.pid
        self.api = Api(self.service.url, self.service.workdir / "meta.sqlite3")
        self.api.login()
        self.lines: list[str] = []

    def compare(
        self, label: str, bare: list[float], ours: list[float], theirs: list[float]
    ) -> None:
        wall = statistics.median(bare)
        self.lines.append(
            f"- {label}: API backup {statistics.median(theirs):.2f} s with {self.revision} "
            f"({statistics.median(theirs) / wall:.2f}x the bare dump), "
            f"{statistics.median(ours):.2f} s with this code "
            f"({statistics.median(ours) / wall:.2f}x)"
        )

    def stop(self) -> None:
        self.service.stop()
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(self.checkout)],
            check=False,
            capture_output=True,
        )


class ApiSeries:
    """One database's API backups over the repetitions, with the reference's beside them
    (``--compare``): wall times, busy CPU, peak RSS over idle, archive size and locations,
    the last record."""

    def __init__(
        self,
        api: Api,
        pid: int,
        reference: Reference | None,
        server: DbServer,
        name: str,
        archives: Archives,
        **fields: Any,
    ) -> None:
        """``fields``: more of the database's fields (its destinations), for this code's
        service only."""
        self.api = api
        self.pid = pid
        self.reference = reference
        self.archives = archives
        self.database_id = api.add_database(server, name, **fields)
        self.ref_id = reference.api.add_database(server, name) if reference else 0
        self.times: list[float] = []
        self.reference_times: list[float] = []
        self.rss_deltas: list[float] = []
        self.upload_peaks: list[float] = []  # MiB, the upload process's own
        self.cpu = BusyCpu()
        self.size = 0
        self.last: dict[str, Any] = {}

    def run(self, turn: int) -> None:
        """This code's backup, and the reference's right before or after it, by turns."""
        if turn % 2:
            self._run_reference()
        elapsed, backup, idle, peak, upload_peak = self.cpu.measure(
            partial(self.api.backup, self.database_id, self.pid)
        )
        self.times.append(elapsed)
        self.rss_deltas.append((peak - idle) / 2**20)
        self.upload_peaks.append(upload_peak / 2**20)
        self.size = backup["size"]
        self.last = backup
        self.archives.add(backup["filepath"])
        if not turn % 2:
            self._run_reference()

    def _run_reference(self) -> None:
        if self.reference is not None:
            elapsed = self.reference.api.backup(self.ref_id, self.reference.pid)[0]
            self.reference_times.append(elapsed)

"""Per-job private directories, under the service's own directory.

The tools look for files on disk: the MySQL clients read ``~/.my.cnf``, libpq reads
``pg_service.conf`` in ``PGSYSCONFDIR``. Each job points them at an empty 0700 directory of
its own, so nothing of the service account's configuration applies to them. No
credentials ever go there (they reach the tool as a descriptor). A crash may leave such a
directory behind; recovery removes them all before any job starts.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from backup_api.config import Settings

JOBS_DIR = ".jobs"


def jobs_root(settings: Settings) -> Path:
    return settings.resolved_secrets_dir / JOBS_DIR


@contextlib.contextmanager
def job_workdir(root: Path, label: str) -> Iterator[Path]:
    """A fresh 0700 directory under ``root`` for one job, removed when the job ends."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def clear_job_workdirs(root: Path) -> int:
    """Remove whatever jobs of a previous run left under ``root``; how many entries went."""
    if not root.is_dir():
        return 0
    removed = 0
    for entry in root.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed

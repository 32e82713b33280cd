"""What the engine's packages may import: the engine (``jobs``, ``archiving``) never
reaches into the web layer, and the archives know nothing of jobs but process priority.
The archive process's own, stricter rule is checked at run time
(``test_archive_process_imports``)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "backup_api"
WEB = (
    "routers",
    "services",
    "deps",
    "main",
    "cli",
    "openapi",
    "middleware",
    "httpprotocol",
    "dashboard",
)


def own_imports(path: Path) -> set[str]:
    """The ``backup_api`` names ``path`` imports, wherever in the file, each whole
    (``from backup_api.jobs import markers``: ``backup_api.jobs.markers``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("backup_api.")}


def modules(package: str) -> list[Path]:
    return sorted((PACKAGE / package).glob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


@pytest.mark.parametrize("path", [*modules("jobs"), *modules("archiving")], ids=relative)
def test_the_engine_never_imports_the_web_layer(path: Path) -> None:
    assert [name for name in own_imports(path) if name.split(".")[1] in WEB] == []


@pytest.mark.parametrize("path", modules("archiving"), ids=relative)
def test_archives_know_nothing_of_jobs_but_priority(path: Path) -> None:
    jobs = [name for name in own_imports(path) if name.startswith("backup_api.jobs.")]
    assert [name for name in jobs if not name.startswith("backup_api.jobs.priority.")] == []


def test_the_engine_loads_without_the_web_layer() -> None:
    """Transitively too: the state the jobs take names what only the routes use (the
    retention sweeper, the server probe) for the type checker alone."""
    code = "import sys, backup_api.jobs.engine; print(*sorted(sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    web = [name for name in loaded if name.startswith("backup_api.")]
    assert [name for name in web if name.split(".")[1] in WEB] == []

"""One way to the metadata database: statements are written in ``repositories`` only, and a
repository imports nothing of the package beyond the models (the tables)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "backup_api"

#: Where SQLAlchemy is more than the ``Connection`` a unit of work is given: the engine and
#: ``Metadata`` (db.py), the tables (models.py), the schema's migrations.
SQLALCHEMY_HOMES = ("db.py", "models.py", "migrate.py", "migrations/", "repositories/")


def _imports(path: Path) -> Iterator[tuple[str, str]]:
    """(module, name) for every ``from module import name``, (module, "") for ``import``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            for alias in node.names:
                yield node.module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ""


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), path


def test_repositories_import_only_the_models_of_the_package() -> None:
    found = {
        (name, f"{module}.{imported}")
        for name, path in _modules()
        if name.startswith("repositories/")
        for module, imported in _imports(path)
        if module.startswith("backup_api")
        and module != "backup_api.models"
        and not module.startswith("backup_api.repositories")
    }
    assert found == set()


def test_no_module_outside_the_repositories_builds_statements() -> None:
    found = {
        (name, f"{module}.{imported}")
        for name, path in _modules()
        if not name.startswith(SQLALCHEMY_HOMES)
        for module, imported in _imports(path)
        if (module == "sqlalchemy" and imported != "Connection")
        or module.startswith("sqlmodel")
        or module == "sqlalchemy.orm"
    }
    assert found == set()


def test_no_module_opens_an_orm_session() -> None:
    found = {
        (name, f"{module}.{imported}")
        for name, path in _modules()
        for module, imported in _imports(path)
        if ("session" in module.lower() or "Session" in imported)
        # botocore's sessions are its configuration and HTTP connections, not the ORM's.
        and not module.startswith("botocore")
    }
    assert found == set()

"""The manifest beside each archive: built, written as JSON, read back and validated."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from backup_api.storage.s3.manifest import ManifestError, build_manifest, parse_manifest


def _manifest(**overrides: Any) -> dict[str, Any]:
    manifest = build_manifest(
        database_name="boutique",
        db_type="postgresql",
        db_name="shop",
        server_version="16.4",
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        filename="shop_20260102_030405.zip",
        checksum="ab" * 32,
        size=1234,
        dump_size=5678,
        dump_tool_version="pg_dump (PostgreSQL) 16.4",
    )
    manifest.update(overrides)
    return manifest


def test_a_manifest_survives_json() -> None:
    manifest = _manifest()
    assert manifest["format"] == 1
    assert manifest["encryption"] is None
    assert manifest["created_at"] == "2026-01-02T03:04:05+00:00"
    assert parse_manifest(json.loads(json.dumps(manifest))) == manifest


def test_extra_fields_are_dropped() -> None:
    assert "key" not in parse_manifest({**_manifest(), "key": "p/postgresql/x.zip"})


@pytest.mark.parametrize(
    "bad",
    [
        {"format": 2},
        {"db_type": "oracle"},
        {"size": -1},
        {"size": True},
        {"size": "12"},
        {"filename": "../x.zip"},
        {"filename": ""},
        {"created_at": "yesterday"},
        {"created_at": "2026-01-02T03:04:05"},
        {"database_name": None},
    ],
)
def test_invalid_manifests_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ManifestError, match="manifeste invalide"):
        parse_manifest(_manifest(**bad))


def test_not_an_object() -> None:
    with pytest.raises(ManifestError):
        parse_manifest([1, 2])

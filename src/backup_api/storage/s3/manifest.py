"""The small JSON document beside each archive in a bucket: enough for a new instance to
rebuild the backup's record from the bucket alone (``POST /api/storages/{id}/import``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

FORMAT = 1
#: A manifest's key is its archive's key with this suffix.
MANIFEST_SUFFIX = ".manifest.json"

#: Field -> the types a valid manifest holds there.
_FIELDS: dict[str, tuple[type, ...]] = {
    "format": (int,),
    "database_name": (str,),
    "db_type": (str,),
    "db_name": (str,),
    "server_version": (str, type(None)),
    "created_at": (str,),
    "filename": (str,),
    "checksum": (str, type(None)),
    "size": (int, type(None)),
    "dump_size": (int, type(None)),
    "dump_tool_version": (str, type(None)),
    "encryption": (str, dict, type(None)),
}
_DB_TYPES = ("postgresql", "mysql")


class ManifestError(ValueError):
    """Not a manifest this service can read (the message is French)."""


def build_manifest(
    *,
    database_name: str,
    db_type: str,
    db_name: str,
    server_version: str | None,
    created_at: datetime,
    filename: str,
    checksum: str | None = None,
    size: int | None = None,
    dump_size: int | None = None,
    dump_tool_version: str | None = None,
    encryption: str | dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of one backup. ``checksum`` and ``size`` are the archive's; the upload
    process fills them in at commit when they are not known yet."""
    return {
        "format": FORMAT,
        "database_name": database_name,
        "db_type": db_type,
        "db_name": db_name,
        "server_version": server_version,
        "created_at": created_at.isoformat(),
        "filename": filename,
        "checksum": checksum,
        "size": size,
        "dump_size": dump_size,
        "dump_tool_version": dump_tool_version,
        "encryption": encryption,
    }


def manifest_key(key: str) -> str:
    return key + MANIFEST_SUFFIX


def encode_manifest(manifest: dict[str, Any]) -> bytes:
    """The manifest's bytes as written beside its archive."""
    return json.dumps(manifest, ensure_ascii=False, sort_keys=True).encode()


def parse_manifest(data: Any) -> dict[str, Any]:
    """``data`` (decoded JSON) checked field by field; raises ``ManifestError``."""
    if not isinstance(data, dict):
        raise ManifestError("manifeste invalide: objet JSON attendu")
    if data.get("format") != FORMAT:
        raise ManifestError(f"manifeste invalide: format inconnu {data.get('format')!r}")
    manifest: dict[str, Any] = {}
    for name, types in _FIELDS.items():
        value = data.get(name)
        # bool is an int to Python, never a size.
        if not isinstance(value, types) or isinstance(value, bool):
            raise ManifestError(f"manifeste invalide: champ {name}")
        manifest[name] = value
    if manifest["db_type"] not in _DB_TYPES:
        raise ManifestError("manifeste invalide: champ db_type")
    if not manifest["filename"] or "/" in manifest["filename"]:
        raise ManifestError("manifeste invalide: champ filename")
    for name in ("size", "dump_size"):
        if manifest[name] is not None and manifest[name] < 0:
            raise ManifestError(f"manifeste invalide: champ {name}")
    try:
        created = datetime.fromisoformat(manifest["created_at"])
    except ValueError:
        raise ManifestError("manifeste invalide: champ created_at") from None
    if created.tzinfo is None:
        raise ManifestError("manifeste invalide: champ created_at sans fuseau")
    return manifest

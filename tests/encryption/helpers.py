"""What the encryption tests share: keys from ``age-keygen``, a database registered with
an encryption setting, the downloaded file, and ``age -d`` (with a key file, or a
passphrase typed into a pseudo-terminal)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.archiving.test_agecrypt import in_terminal, keygen
from tests.support.apphelpers import Api

__all__ = ["PASSPHRASE", "age_decrypt", "download", "encrypted_database", "keygen", "unzip_ok"]

PASSPHRASE = "une phrase secrète assez longue"


async def encrypted_database(
    api: Api, server: Any, db_name: str, encryption: dict[str, Any] | None
) -> dict[str, Any]:
    return await api.add_database(server, db_name, encryption=encryption)


async def download(api: Api, backup: dict[str, Any], path: Path) -> bytes:
    response = await api.get(f"/api/backups/{backup['id']}/download")
    assert response.status_code == 200, response.text
    path.write_bytes(response.content)
    return response.content


def age_decrypt(
    encrypted: Path, out: Path, *, key: Path | None = None, passphrase: str = ""
) -> None:
    """``age -d`` as the owner runs it, without this service."""
    if key is not None:
        subprocess.run(
            ["age", "-d", "-i", str(key), "-o", str(out), str(encrypted)],
            check=True,
            capture_output=True,
        )
        return
    status, shown = in_terminal(["age", "-d", "-o", str(out), str(encrypted)], passphrase)
    assert status == 0, shown


def unzip_ok(archive: Path) -> str:
    """``unzip -t``'s report, asserting it found no error."""
    result = subprocess.run(["unzip", "-t", str(archive)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No errors detected" in result.stdout
    return result.stdout

"""Encrypted backups end to end, with the reference ``age`` tool and the real servers: the
stored file opens with ``age -d`` alone into the ZIP a plain backup would be, both kinds
restore row for row, damaged files and wrong keys are refused before the target is
touched, and the secrets show nowhere."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from backup_api.archiving.agecrypt import generate_identity
from tests.encryption.helpers import PASSPHRASE, age_decrypt, download, keygen, unzip_ok
from tests.support.apphelpers import Api, metadata_sql, unique_name
from tests.support.locks import archive_processes, table_locked, tool_processes, wait_until
from tests.support.sample_data import create_bulky, create_filled, snapshot

ENGINES = ["postgresql", "mysql"]
MODES = ["recipients", "passphrase"]


def server_for(request: pytest.FixtureRequest, engine: str) -> Any:
    return request.getfixturevalue("pg_server" if engine == "postgresql" else "mysql_server")


def setting(mode: str, recipient: str) -> dict[str, Any]:
    return {"recipients": [recipient]} if mode == "recipients" else {"passphrase": PASSPHRASE}


async def test_a_backup_to_a_recipient_opens_with_age_alone(
    pg_server: Any, alice: Api, tmp_path: Path
) -> None:
    key, recipient = keygen(tmp_path)
    source = unique_name("enc")
    create_filled(pg_server, source)
    database = await alice.add_database(pg_server, source, encryption={"recipients": [recipient]})
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    assert backup["status"] == "completed", backup["error_msg"]
    assert backup["encrypted"] is True
    assert backup["filename"].endswith(".zip.age")
    assert backup["filename"].startswith(f"{source}_")
    stored = tmp_path / backup["filename"]
    content = await download(alice, backup, stored)
    assert content.startswith(b"age-encryption.org/v1\n-> X25519 ")
    # The checksum and size are the stored file's.
    assert hashlib.sha256(content).hexdigest() == backup["checksum"]
    assert len(content) == backup["size"]
    plain = tmp_path / "f.zip"
    age_decrypt(stored, plain, key=key)
    unzip_ok(plain)
    entry = backup["filename"].removesuffix(".zip.age") + ".sql"
    assert zipfile.ZipFile(plain).namelist() == [entry]
    assert b"PostgreSQL database dump" in zipfile.ZipFile(plain).read(entry)

    # The service cannot decrypt it: the verification says what it checked.
    response = await alice.post(f"/api/backups/{backup['id']}/verify")
    assert response.status_code == 200
    verification = response.json()["verification"]
    assert verification["valid"] is True
    assert verification["contents_checked"] is False
    assert verification["checksum_actual"] == backup["checksum"]
    assert "n'a pas été vérifié" in response.json()["message"]
    pg_server.drop_database(source)


async def test_a_backup_with_a_passphrase_opens_with_age_alone(
    mysql_server: Any, alice: Api, tmp_path: Path
) -> None:
    source = unique_name("enc")
    create_filled(mysql_server, source)
    database = await alice.add_database(mysql_server, source, encryption={"passphrase": PASSPHRASE})
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    assert backup["status"] == "completed", backup["error_msg"]
    assert backup["encrypted"] is True
    stored = tmp_path / backup["filename"]
    content = await download(alice, backup, stored)
    assert content.startswith(b"age-encryption.org/v1\n-> scrypt ")
    assert hashlib.sha256(content).hexdigest() == backup["checksum"]
    plain = tmp_path / "f.zip"
    age_decrypt(stored, plain, passphrase=PASSPHRASE)
    unzip_ok(plain)
    # The service holds the passphrase: the whole age stream and the ZIP are checked.
    response = await alice.post(f"/api/backups/{backup['id']}/verify")
    assert response.json()["verification"] == {
        "valid": True,
        "checksum_expected": backup["checksum"],
        "checksum_actual": backup["checksum"],
        "error": None,
        "contents_checked": True,
    }
    assert response.json()["message"] == "Sauvegarde intègre"
    mysql_server.drop_database(source)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("engine", ENGINES)
async def test_encrypted_backups_restore_row_for_row(
    engine: str, mode: str, request: pytest.FixtureRequest, alice: Api
) -> None:
    server = server_for(request, engine)
    identity, recipient = generate_identity()
    source, target = unique_name("src"), unique_name("dst")
    expected = create_filled(server, source)
    server.create_database(target)
    database = await alice.add_database(server, source, encryption=setting(mode, recipient))
    other = await alice.add_database(server, target)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    assert backup["status"] == "completed", backup["error_msg"]
    # Changing (here: turning off) the database's setting strands no older backup.
    await alice.put(f"/api/databases/{database['id']}", json={"encryption": None})
    body: dict[str, Any] = {"database_id": other["id"]}
    if mode == "recipients":
        body["identity"] = identity
    response = await alice.post(f"/api/backups/{backup['id']}/restore", json=body)
    assert response.status_code == 202, response.text
    restore = await alice.wait_restore(response.json()["restore"]["id"])
    assert restore["status"] == "completed", restore["error_msg"]
    assert snapshot(server, target) == expected
    server.drop_database(source)
    server.drop_database(target)


async def test_a_file_that_age_encrypted_is_restored_by_the_service(
    pg_server: Any, alice: Api, app: FastAPI, tmp_path: Path
) -> None:
    """The other direction: the stored file replaced by ``age -r``'s own encryption of
    the same ZIP (its record made to match) is verified and restored as ours are."""
    key, recipient = keygen(tmp_path)
    identity = next(
        line for line in key.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-")
    )
    source, target = unique_name("src"), unique_name("dst")
    expected = create_filled(pg_server, source)
    pg_server.create_database(target)
    database = await alice.add_database(pg_server, source, encryption={"recipients": [recipient]})
    other = await alice.add_database(pg_server, target)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    path = local_file(app, backup)
    plain = tmp_path / "f.zip"
    age_decrypt(path, plain, key=key)
    theirs = tmp_path / "theirs.zip.age"
    subprocess.run(
        ["age", "-r", recipient, "-o", str(theirs), str(plain)], check=True, capture_output=True
    )
    data = theirs.read_bytes()
    assert data != path.read_bytes()
    path.write_bytes(data)
    await metadata_sql(
        app,
        "UPDATE backups SET checksum = :sum, size = :size WHERE id = :id",
        sum=hashlib.sha256(data).hexdigest(),
        size=len(data),
        id=backup["id"],
    )
    verification = (await alice.post(f"/api/backups/{backup['id']}/verify")).json()
    assert verification["verification"]["valid"] is True
    response = await alice.post(
        f"/api/backups/{backup['id']}/restore",
        json={"database_id": other["id"], "identity": identity},
    )
    assert response.status_code == 202, response.text
    restore = await alice.wait_restore(response.json()["restore"]["id"])
    assert restore["status"] == "completed", restore["error_msg"]
    assert snapshot(pg_server, target) == expected
    pg_server.drop_database(source)
    pg_server.drop_database(target)


async def test_wrong_or_missing_keys_are_refused_before_the_target_is_touched(
    pg_server: Any, alice: Api, app: FastAPI
) -> None:
    identity, recipient = generate_identity()
    wrong, _ = generate_identity()
    source, target = unique_name("src"), unique_name("dst")
    create_filled(pg_server, source)
    target_rows = create_filled(pg_server, target)
    by_keys = await alice.add_database(pg_server, source, encryption={"recipients": [recipient]})
    by_phrase = await alice.add_database(pg_server, source, encryption={"passphrase": PASSPHRASE})
    plain = await alice.add_database(pg_server, source)
    other = await alice.add_database(pg_server, target)
    backups = [
        await alice.wait_backup((await alice.start_backup(d["id"]))["id"])
        for d in (by_keys, by_phrase, plain)
    ]
    assert [b["status"] for b in backups] == ["completed"] * 3
    keys_backup, phrase_backup, plain_backup = backups

    async def refused(backup: dict[str, Any], **extra: Any) -> str:
        response = await alice.post(
            f"/api/backups/{backup['id']}/restore", json={"database_id": other["id"], **extra}
        )
        assert response.status_code == 400, response.text
        message: str = response.json()["error"]
        return message

    assert await refused(keys_backup) == (
        "Données invalides: identity: requise pour cette sauvegarde, chiffrée pour des "
        "destinataires age (la clé secrète AGE-SECRET-KEY-1... de l'un d'eux)"
    )
    assert await refused(keys_backup, identity=wrong) == (
        "Identité age incorrecte: cette clé n'ouvre pas la sauvegarde (aucun de ses "
        "destinataires ne lui correspond); la base cible n'a pas été modifiée"
    )
    assert await refused(keys_backup, identity="AGE-SECRET-KEY-1PASUNECLE") == (
        "Données invalides: identity: identité age invalide (attendu : une clé secrète "
        "AGE-SECRET-KEY-1…)"
    )
    assert await refused(plain_backup, identity=identity) == (
        "Données invalides: identity: inutile, cette sauvegarde n'est pas chiffrée pour des "
        "destinataires age"
    )
    assert await refused(phrase_backup, identity=identity) == (
        "Données invalides: identity: inutile, cette sauvegarde n'est pas chiffrée pour des "
        "destinataires age"
    )
    # The passphrase the backup keeps does not open its file (here: replaced by another
    # one, as a changed file or a mixed-up record would): refused the same way.
    other_phrase = await alice.add_database(
        pg_server, source, encryption={"passphrase": "une toute autre phrase"}
    )
    await metadata_sql(
        app,
        "UPDATE backups SET encryption_passphrase_encrypted = (SELECT "
        "encryption_passphrase_encrypted FROM databases WHERE id = :db) WHERE id = :id",
        db=other_phrase["id"],
        id=phrase_backup["id"],
    )
    assert await refused(phrase_backup) == (
        "Phrase secrète incorrecte: celle enregistrée pour cette sauvegarde ne l'ouvre pas; "
        "la base cible n'a pas été modifiée"
    )
    assert (await alice.get("/api/restores")).json()["restores"] == []
    assert snapshot(pg_server, target) == target_rows
    pg_server.drop_database(source)
    pg_server.drop_database(target)


def local_file(app: FastAPI, backup: dict[str, Any]) -> Path:
    settings = app.state.backup_api.settings
    return Path(settings.backup_root) / backup["db_type"] / backup["filename"]


@pytest.mark.parametrize("mode", MODES)
async def test_damaged_files_are_refused_by_verify_and_restore(
    mode: str, mysql_server: Any, alice: Api, app: FastAPI
) -> None:
    identity, recipient = generate_identity()
    source, target = unique_name("src"), unique_name("dst")
    create_bulky(mysql_server, source)  # many age chunks: one altered in the middle
    target_rows = create_filled(mysql_server, target)
    database = await alice.add_database(mysql_server, source, encryption=setting(mode, recipient))
    other = await alice.add_database(mysql_server, target)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    path = local_file(app, backup)
    original = path.read_bytes()
    extra = {"identity": identity} if mode == "recipients" else {}

    async def verify() -> dict[str, Any]:
        response = await alice.post(f"/api/backups/{backup['id']}/verify")
        assert response.status_code == 200
        assert response.json()["message"] == "Sauvegarde corrompue"
        verification: dict[str, Any] = response.json()["verification"]
        assert verification["valid"] is False
        return verification

    async def restore_fails() -> str:
        response = await alice.post(
            f"/api/backups/{backup['id']}/restore", json={"database_id": other["id"], **extra}
        )
        assert response.status_code == 202, response.text
        restore = await alice.wait_restore(response.json()["restore"]["id"])
        assert restore["status"] == "failed"
        assert snapshot(mysql_server, target) == target_rows
        reason: str = restore["error_msg"]
        return reason

    async def recorded_as_is(data: bytes) -> None:
        # The stored checksum made to match: what the age layer itself finds.
        path.write_bytes(data)
        await metadata_sql(
            app,
            "UPDATE backups SET checksum = :sum WHERE id = :id",
            sum=hashlib.sha256(data).hexdigest(),
            id=backup["id"],
        )

    mismatch = "archive corrompue: la somme de contrôle SHA-256 ne correspond pas"
    cut = original[: len(original) - 100]
    path.write_bytes(cut)
    assert (await verify())["error"] == mismatch
    assert await restore_fails() == mismatch

    await recorded_as_is(cut)
    if mode == "passphrase":
        assert (await verify())["error"] == "fichier chiffré tronqué ou altéré"
    assert await restore_fails() == "fichier chiffré tronqué ou altéré"

    altered = bytearray(original)
    altered[len(original) // 2] ^= 1
    await recorded_as_is(bytes(altered))
    if mode == "passphrase":
        assert (await verify())["error"] == "fichier chiffré altéré"
    assert await restore_fails() == "fichier chiffré altéré"
    mysql_server.drop_database(source)
    mysql_server.drop_database(target)


def archive_children() -> list[int]:
    """The archive processes on this machine (waiting or at work)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"backup_api.archiving.child" in cmdline:
            pids.append(int(entry.name))
    return pids


def process_texts(pids: list[int]) -> bytes:
    texts = b""
    for pid in pids:
        for name in ("cmdline", "environ"):
            with contextlib.suppress(OSError):
                texts += Path(f"/proc/{pid}/{name}").read_bytes()
    return texts


async def test_secrets_appear_in_no_response_log_process_or_column(
    pg_server: Any, alice: Api, app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    identity, recipient = generate_identity()
    source, target = unique_name("src"), unique_name("dst")
    expected = create_filled(pg_server, source)
    server_rows = create_filled(pg_server, target)
    assert server_rows == expected
    responses: list[str] = []
    by_phrase = await alice.add_database(pg_server, source, encryption={"passphrase": PASSPHRASE})
    by_keys = await alice.add_database(pg_server, source, encryption={"recipients": [recipient]})
    other = await alice.add_database(pg_server, target)

    # A passphrase backup held by a lock: its archive process is at work meanwhile.
    with table_locked(pg_server, source):
        started = await alice.post(f"/api/backups/database/{by_phrase['id']}")
        responses.append(started.text)
        # The archive process that writes the staged file has its job (and the passphrase).
        root = app.state.backup_api.settings.backup_root
        await wait_until(lambda: archive_processes(root))
        seen = process_texts(archive_children())
    phrase_backup = await alice.wait_backup(started.json()["backup"]["id"])
    assert phrase_backup["status"] == "completed", phrase_backup["error_msg"]
    keys_backup = await alice.wait_backup((await alice.start_backup(by_keys["id"]))["id"])

    # A restore with the identity, its psql held by a lock on the target.
    with table_locked(pg_server, target):
        response = await alice.post(
            f"/api/backups/{keys_backup['id']}/restore",
            json={"database_id": other["id"], "identity": identity},
        )
        responses.append(response.text)
        assert response.status_code == 202, response.text
        restore_id = response.json()["restore"]["id"]
        # psql runs: the archive process that feeds it has its job (and the identity).
        await wait_until(lambda: tool_processes("psql", f"restore:{restore_id}@"))
        assert app.state.backup_api.restore_identities == {}
        seen += process_texts(archive_children())
    restore = await alice.wait_restore(restore_id)
    assert restore["status"] == "completed", restore["error_msg"]
    for url in (
        f"/api/backups/{phrase_backup['id']}",
        f"/api/backups/{keys_backup['id']}",
        "/api/backups",
        f"/api/restores/{restore_id}",
        "/api/databases",
    ):
        responses.append((await alice.get(url)).text)
    responses.append((await alice.post(f"/api/backups/{phrase_backup['id']}/verify")).text)
    tables = ["databases", "backups", "restores", "backup_copies"]
    columns = [repr(await metadata_sql(app, f"SELECT * FROM {table}")) for table in tables]
    secret_key = identity.split("1", 1)[1]  # the key's data, whatever its case
    for secret in (PASSPHRASE, identity, secret_key, secret_key.lower()):
        assert secret.encode() not in seen
        for text in responses + columns + [caplog.text]:
            assert secret not in text
    assert os.environ.get("BACKUP_API_AGE_SCRYPT_LOG_N") is None
    pg_server.drop_database(source)
    pg_server.drop_database(target)

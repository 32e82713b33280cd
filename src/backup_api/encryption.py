"""Encrypted backups (the age format): a database's setting as stored and shown, what each
backup keeps of it, and the keys an archive process is given for a backup.

A backup keeps its own copy of the setting it was made with (its recipients, which are
public, or the passphrase's Fernet token), so changing a database's setting never strands
its older backups. Identities (secret keys of recipients) are never stored: a restore
brings one, and it lives in memory for that restore alone.
"""

from __future__ import annotations

import json
from typing import Any

from backup_api.archiving.protocol import AgeKeys
from backup_api.config import Settings
from backup_api.models import (
    EncryptionSettings,
    PassphraseEncryption,
    RecipientsEncryption,
)
from backup_api.repositories import Record
from backup_api.security import Keys, decrypt_secret, encrypt_secret

RECIPIENTS = "recipients"
PASSPHRASE = "passphrase"  # noqa: S105 (a mode's name)
SUFFIX = ".age"
#: A restore of a backup encrypted to recipients whose identity the service no longer holds.
IDENTITY_LOST = "identité perdue au redémarrage: relancez la restauration"


def setting_columns(keys: Keys, setting: EncryptionSettings | None) -> dict[str, Any]:
    """A database's columns for ``setting`` (None: no encryption)."""
    if setting is None:
        mode, recipients, passphrase = None, None, None
    elif setting.recipients is not None:
        mode, recipients, passphrase = RECIPIENTS, json.dumps(setting.recipients), None
    else:
        assert setting.passphrase is not None
        mode, recipients, passphrase = PASSPHRASE, None, encrypt_secret(keys, setting.passphrase)
    return {
        "encryption_mode": mode,
        "encryption_recipients": recipients,
        "encryption_passphrase_encrypted": passphrase,
    }


def public(database: Record) -> RecipientsEncryption | PassphraseEncryption | None:
    """What the database object says of its setting (never the passphrase)."""
    mode = database.encryption_mode
    if mode == RECIPIENTS:
        return RecipientsEncryption(mode=RECIPIENTS, recipients=_recipients(database))
    if mode == PASSPHRASE:
        return PassphraseEncryption(mode=PASSPHRASE)
    return None


def backup_columns(database: Record) -> dict[str, Any]:
    """What a new backup of ``database`` keeps of its setting."""
    mode = database.encryption_mode
    return {
        "encrypted": mode in (RECIPIENTS, PASSPHRASE),
        "encryption_recipients": database.encryption_recipients if mode == RECIPIENTS else None,
        "encryption_passphrase_encrypted": (
            database.encryption_passphrase_encrypted if mode == PASSPHRASE else None
        ),
    }


def file_suffix(database: Record) -> str:
    """The extension of a new backup's file: ``.zip``, or ``.zip.age`` when encrypted."""
    return ".zip" + (SUFFIX if database.encryption_mode is not None else "")


def entry_name(filename: str) -> str:
    """The SQL entry inside a backup's ZIP: the file's name without ``.zip`` / ``.zip.age``."""
    return filename.removesuffix(SUFFIX).removesuffix(".zip") + ".sql"


def needs_identity(backup: Record) -> bool:
    """Encrypted to recipients: only their identity opens it, which the service lacks."""
    return bool(backup.encrypted) and backup.encryption_passphrase_encrypted is None


def encrypting_keys(keys: Keys, settings: Settings, backup: Record) -> AgeKeys | None:
    """What a backup's archive process encrypts with (None: a plain ZIP).
    ``CredentialError`` if the stored passphrase cannot be decrypted."""
    if not backup.encrypted:
        return None
    if backup.encryption_passphrase_encrypted is not None:
        passphrase = decrypt_secret(keys, backup.encryption_passphrase_encrypted)
        return AgeKeys(passphrase=passphrase, scrypt_log_n=settings.age_scrypt_log_n)
    return AgeKeys(recipients=tuple(_recipients(backup)))


def opening_keys(keys: Keys, backup: Record, identity: str | None = None) -> AgeKeys | None:
    """What opens a backup's file: its passphrase, else ``identity`` (None: a plain ZIP, or
    no identity for a backup encrypted to recipients). ``CredentialError`` as above."""
    if not backup.encrypted:
        return None
    if backup.encryption_passphrase_encrypted is not None:
        return AgeKeys(passphrase=decrypt_secret(keys, backup.encryption_passphrase_encrypted))
    return None if identity is None else AgeKeys(identities=(identity,))


def manifest_entry(backup: Record) -> dict[str, Any] | None:
    """What the manifest beside an archive in a bucket says of its encryption: the mode,
    and the recipients (public keys); never a passphrase."""
    if not backup.encrypted:
        return None
    if backup.encryption_passphrase_encrypted is not None:
        return {"mode": PASSPHRASE}
    return {"mode": RECIPIENTS, "recipients": _recipients(backup)}


def imported_columns(filename: str, entry: object) -> dict[str, Any]:
    """A backup rebuilt from a bucket: encrypted when its manifest or its name says so.
    Its keys are not in the bucket, so a restore brings the identity (the owner opens a
    passphrase one with ``age -d``)."""
    recipients = entry.get("recipients") if isinstance(entry, dict) else None
    return {
        "encrypted": entry is not None or filename.endswith(".zip" + SUFFIX),
        "encryption_recipients": json.dumps(recipients) if isinstance(recipients, list) else None,
    }


def _recipients(record: Record) -> list[str]:
    value = record.encryption_recipients
    return [str(r) for r in json.loads(value)] if value else []

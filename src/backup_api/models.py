"""Tables and their public/create/update schemas, one family per entity."""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
)
from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from backup_api.dumpers.registry import supported_types


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _as_utc(value: datetime) -> datetime:
    # SQLite hands datetimes back naive; they were stored as UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    # isoformat is several times cheaper than strftime, and listings format four per row.
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="seconds") + "Z"


Timestamp = Annotated[datetime, PlainSerializer(format_timestamp, return_type=str)]
OptionalTimestamp = Annotated[
    datetime | None,
    PlainSerializer(lambda v: None if v is None else format_timestamp(v), return_type=str | None),
]


def _tz_column(nullable: bool = False) -> Any:
    return SQLField(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class JobStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


# --------------------------------------------------------------------------- users


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = SQLField(default=None, primary_key=True)
    email: str = SQLField(sa_column=Column(String(320), unique=True, nullable=False))
    password_hash: str = SQLField(sa_column=Column(String(255), nullable=False))
    role: str = SQLField(default=Role.USER.value, sa_column=Column(String(16), nullable=False))
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))


class StrictBody(BaseModel):
    """Request bodies: unknown fields (``user_id``, ``status``...) are a 400, never applied."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("caractère NUL interdit")
    return value


def normalize_email(value: str) -> str:
    """Lower-cased, validated address: uniqueness is case-insensitive."""
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        raise ValueError("adresse e-mail invalide") from None
    return result.normalized.lower()


class UserRegister(StrictBody):
    email: str = Field(max_length=320, json_schema_extra={"format": "email"})
    password: str = Field(min_length=8, max_length=1024)
    role: Role = Role.USER

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return normalize_email(_no_nul(value))

    @field_validator("password")
    @classmethod
    def _password(cls, value: str) -> str:
        return _no_nul(value)


class UserLogin(StrictBody):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class UserPublic(BaseModel):
    id: int
    email: str
    role: Role
    created_at: Timestamp
    updated_at: Timestamp


class UserRoleUpdate(StrictBody):
    role: Role


# --------------------------------------------------------------------------- databases


class Database(SQLModel, table=True):
    __tablename__ = "databases"

    id: int | None = SQLField(default=None, primary_key=True)
    name: str = SQLField(sa_column=Column(String(255), nullable=False))
    type: str = SQLField(sa_column=Column(String(32), nullable=False))
    host: str = SQLField(sa_column=Column(String(255), nullable=False))
    port: str = SQLField(sa_column=Column(String(5), nullable=False))
    username: str = SQLField(sa_column=Column(String(128), nullable=False))
    # Fernet token of the password: the metadata database alone does not reveal it.
    password_encrypted: str = SQLField(sa_column=Column(Text, nullable=False))
    db_name: str = SQLField(sa_column=Column(String(128), nullable=False))
    user_id: int = SQLField(
        sa_column=Column(Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))
    # Last version the server reported (PostgreSQL), at registration or before a job.
    server_version: str | None = SQLField(default=None, sa_column=Column(String(32), nullable=True))


_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})$")


def _check_host(value: str) -> str:
    value = _no_nul(value)
    if not value:
        raise ValueError("hôte requis")
    if value.startswith("-"):
        raise ValueError("ne doit pas commencer par '-'")
    if value.startswith("/"):
        raise ValueError("les sockets locaux ne sont pas acceptés")
    if "," in value:
        raise ValueError("un seul hôte est accepté")
    candidate = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        if not _HOSTNAME.match(value):
            raise ValueError("nom d'hôte invalide") from None
        return value
    return candidate


def _check_identifier(value: str) -> str:
    value = _no_nul(value)
    if not value.strip():
        raise ValueError("ne doit pas être vide")
    if value.startswith("-"):
        raise ValueError("ne doit pas commencer par '-'")
    if any(ord(c) < 32 for c in value):
        raise ValueError("caractères de contrôle interdits")
    return value


def _check_port(value: object) -> str:
    if isinstance(value, bool):
        raise ValueError("port invalide")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 5:
        number = int(value)
    else:
        raise ValueError("port invalide (1-65535)")
    if not 1 <= number <= 65535:
        raise ValueError("port invalide (1-65535)")
    return str(number)


def _check_type(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("chaîne attendue")
    return value


def _check_name(value: str) -> str:
    value = _no_nul(value)
    if not value.strip():
        raise ValueError("ne doit pas être vide")
    return value


Host = Annotated[str, Field(max_length=255), BeforeValidator(_check_type)]
PortValue = Annotated[
    str, BeforeValidator(_check_port), Field(json_schema_extra={"example": "5432"})
]
Identifier = Annotated[str, Field(min_length=1, max_length=128)]
DbPassword = Annotated[str, Field(max_length=1024)]
DbType = Annotated[str, Field(max_length=32, json_schema_extra={"enum": supported_types()})]


class DatabaseFields(StrictBody):
    @field_validator("host", check_fields=False)
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return None if value is None else _check_host(value)

    @field_validator("username", "db_name", check_fields=False)
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        return None if value is None else _check_identifier(value)

    @field_validator("name", check_fields=False)
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else _check_name(value)

    @field_validator("password", check_fields=False)
    @classmethod
    def _password(cls, value: str | None) -> str | None:
        return None if value is None else _no_nul(value)


class DatabaseCreate(DatabaseFields):
    name: str = Field(min_length=1, max_length=255)
    type: DbType
    host: Host
    port: PortValue
    username: Identifier
    password: DbPassword = ""
    db_name: Identifier


class DatabaseUpdate(DatabaseFields):
    """A PUT may omit fields; a missing ``password`` keeps the stored one."""

    name: str | None = Field(default=None, min_length=1, max_length=255)
    type: DbType | None = None
    host: Host | None = None
    port: PortValue | None = None
    username: Identifier | None = None
    password: DbPassword | None = None
    db_name: Identifier | None = None


class DatabasePublic(BaseModel):
    id: int
    name: str
    type: str
    host: str
    port: str
    username: str
    db_name: str
    user_id: int
    created_at: Timestamp
    updated_at: Timestamp
    server_version: str | None = Field(
        default=None,
        description="Version du serveur PostgreSQL détectée à l'enregistrement et avant "
        "chaque sauvegarde ou restauration (null: inconnue, ou MySQL)",
    )


# --------------------------------------------------------------------------- backups


class Backup(SQLModel, table=True):
    __tablename__ = "backups"
    # Listing is "a user's backups, newest first": served by one index walk.
    __table_args__ = (Index("ix_backups_user_id_id", "user_id", "id"),)

    id: int | None = SQLField(default=None, primary_key=True)
    filename: str = SQLField(sa_column=Column(String(255), nullable=False))
    filepath: str = SQLField(sa_column=Column(String(1024), nullable=False, unique=True))
    size: int = SQLField(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    status: str = SQLField(
        default=JobStatus.PENDING.value, sa_column=Column(String(16), nullable=False, index=True)
    )
    error_msg: str | None = SQLField(default=None, sa_column=Column(Text, nullable=True))
    checksum: str | None = SQLField(default=None, sa_column=Column(String(64), nullable=True))
    db_type: str = SQLField(sa_column=Column(String(32), nullable=False))
    db_name: str = SQLField(sa_column=Column(String(128), nullable=False))
    user_id: int = SQLField(
        sa_column=Column(
            Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    database_id: int | None = SQLField(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("databases.id", ondelete="SET NULL"), nullable=True, index=True
        ),
    )
    dump_size: int | None = SQLField(default=None, sa_column=Column(BigInteger, nullable=True))
    # Version of the pg_dump that wrote the dump: a restore needs a psql at least as new.
    dump_tool_version: str | None = SQLField(
        default=None, sa_column=Column(String(32), nullable=True)
    )
    started_at: datetime | None = _tz_column(nullable=True)
    finished_at: datetime | None = _tz_column(nullable=True)
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))


class BackupPublic(BaseModel):
    # The seed's fields first, in the seed's order; additions after.
    id: int
    filename: str
    filepath: str
    size: int
    status: JobStatus
    created_at: Timestamp
    updated_at: Timestamp
    user_id: int
    database_id: int | None
    error_msg: str | None
    checksum: str | None = Field(description="SHA-256 de l'archive ZIP (hexadécimal)")
    db_type: str
    dump_size: int | None = Field(description="Taille du dump SQL non compressé, en octets")
    started_at: OptionalTimestamp
    finished_at: OptionalTimestamp
    duration_seconds: float | None
    dump_tool_version: str | None = Field(
        default=None,
        description="Version de pg_dump qui a écrit le dump (PostgreSQL); une restauration "
        "utilise un psql au moins aussi récent",
    )


# --------------------------------------------------------------------------- restores


class Restore(SQLModel, table=True):
    __tablename__ = "restores"

    id: int | None = SQLField(default=None, primary_key=True)
    backup_id: int | None = SQLField(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("backups.id", ondelete="SET NULL"), nullable=True, index=True
        ),
    )
    database_id: int | None = SQLField(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("databases.id", ondelete="SET NULL"), nullable=True, index=True
        ),
    )
    status: str = SQLField(
        default=JobStatus.PENDING.value, sa_column=Column(String(16), nullable=False, index=True)
    )
    error_msg: str | None = SQLField(default=None, sa_column=Column(Text, nullable=True))
    user_id: int = SQLField(
        sa_column=Column(
            Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    started_at: datetime | None = _tz_column(nullable=True)
    finished_at: datetime | None = _tz_column(nullable=True)
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))


class RestoreCreate(StrictBody):
    database_id: int | None = Field(default=None, ge=1)


class RestorePublic(BaseModel):
    id: int
    backup_id: int | None
    database_id: int | None
    status: JobStatus
    error_msg: str | None
    created_at: Timestamp
    updated_at: Timestamp
    user_id: int
    started_at: OptionalTimestamp
    finished_at: OptionalTimestamp
    duration_seconds: float | None


def duration_seconds(started: datetime | None, finished: datetime | None) -> float | None:
    if started is None or finished is None:
        return None
    return round((_as_utc(finished) - _as_utc(started)).total_seconds(), 3)


# --------------------------------------------------------------------------- envelopes


class ErrorResponse(BaseModel):
    error: str


class MessageResponse(BaseModel):
    message: str


class UserEnvelope(BaseModel):
    message: str
    user: UserPublic


class UserItem(BaseModel):
    user: UserPublic


class UserList(BaseModel):
    users: list[UserPublic]


class LoginResponse(BaseModel):
    token: str
    token_type: str = "bearer"  # noqa: S105 (the scheme's name, not a secret)
    expires_in: int = Field(description="Durée de validité du token, en secondes")
    user: UserPublic


class DatabaseEnvelope(BaseModel):
    message: str
    database: DatabasePublic
    warning: str | None = Field(
        default=None,
        description="Présent quand aucun client installé ne peut sauvegarder ce serveur",
    )


class DatabaseItem(BaseModel):
    database: DatabasePublic


class DatabaseList(BaseModel):
    databases: list[DatabasePublic]


class BackupEnvelope(BaseModel):
    message: str
    backup: BackupPublic


class BackupItem(BaseModel):
    backup: BackupPublic


class BackupList(BaseModel):
    backups: list[BackupPublic]


class VerificationPublic(BaseModel):
    valid: bool
    checksum_expected: str | None
    checksum_actual: str | None
    error: str | None


class VerificationResponse(BaseModel):
    message: str
    verification: VerificationPublic
    backup: BackupPublic


class RestoreEnvelope(BaseModel):
    message: str
    restore: RestorePublic


class RestoreItem(BaseModel):
    restore: RestorePublic


class RestoreList(BaseModel):
    restores: list[RestorePublic]


class ToolStatus(BaseModel):
    available: bool
    path: str | None
    version: str | None


class ClientStatus(BaseModel):
    tool: str
    path: str
    version: str | None = Field(description="null: ne répond pas comme un client PostgreSQL")


class HealthResponse(BaseModel):
    status: str = Field(description="ok, ou degraded si un élément manque")
    database: str
    tools: dict[str, ToolStatus]
    pg_clients: list[ClientStatus] = Field(
        default_factory=list,
        description="Clients PostgreSQL trouvés (pg_dump, psql); chaque tâche prend le plus "
        "récent qui convient",
    )
    storage: dict[str, int | str]
    jobs: dict[str, int]

"""Tables and their public/create/update schemas, one family per entity."""

from __future__ import annotations

import copy
import ipaddress
import re
import secrets
import unicodedata
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import email_validator
from annotated_types import Ge, Le
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    true,
)
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from backup_api.archiving.agecrypt import parse_identity, parse_recipient
from backup_api.cron import EXPRESSION_PATTERN, known_zones, normalize_expression, parse_zone
from backup_api.dumpers.registry import accepted_types, canonical_type


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def as_utc(value: datetime) -> datetime:
    # SQLite hands datetimes back naive; they were stored as UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    # isoformat is several times cheaper than strftime, and listings format four per row.
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="seconds") + "Z"


_DATE_TIME = {"type": "string", "format": "date-time"}
Timestamp = Annotated[
    datetime,
    PlainSerializer(format_timestamp, return_type=str),
    WithJsonSchema(_DATE_TIME),
]
OptionalTimestamp = Annotated[
    datetime | None,
    PlainSerializer(lambda v: None if v is None else format_timestamp(v), return_type=str | None),
    WithJsonSchema({"anyOf": [_DATE_TIME, {"type": "null"}]}),
]


def _tz_column(nullable: bool = False) -> Any:
    return SQLField(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


#: The largest id: the id columns are 32-bit integers on every metadata backend, so any
#: larger value (or zero, or a negative one) is a bad request, never a database error.
MAX_ID = 2**31 - 1


def _id_not_bool(value: object) -> object:
    # JSON ``true`` would otherwise be read as the id 1.
    if isinstance(value, bool):
        raise ValueError("entier attendu")
    return value


#: An id given in a request body.
IdValue = Annotated[int, BeforeValidator(_id_not_bool), Field(ge=1, le=MAX_ID)]

#: The most storages one database's backups may be sent to at once.
MAX_DESTINATIONS = 10

#: The longest notification channel or heartbeat URL accepted.
MAX_CHANNEL_URL = 2048


def check_http_url(value: str) -> str:
    """An http(s) URL with a host, without credentials, spaces or a fragment (a webhook's,
    a heartbeat's). The messages never repeat the URL: it may carry a token."""
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("URL invalide (espaces ou caractères de contrôle)")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (a bad port raises)
    except ValueError:
        raise ValueError("URL invalide") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("URL invalide (http ou https attendu, avec un hôte)")
    if parts.username is not None or parts.password is not None:
        raise ValueError("identifiants interdits dans l'URL")
    if parts.fragment:
        raise ValueError("fragment (#...) interdit dans l'URL")
    return value


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class JobStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


class JobPhase(StrEnum):
    """Where a pending job is: waiting for its turn, its tool at work, its output being
    made final."""

    QUEUED = "queued"
    DUMPING = "dumping"
    RESTORING = "restoring"
    FINISHING = "finishing"


class StorageType(StrEnum):
    S3 = "s3"


class CopyStatus(StrEnum):
    """Where one destination's copy of a backup stands."""

    PENDING = "pending"  # the backup (or a retry) has not written it yet
    RUNNING = "running"  # being written
    COMPLETED = "completed"  # complete and readable
    FAILED = "failed"  # not written; a retry sends it again from a complete copy
    DELETE_FAILED = "delete_failed"  # its deletion failed; a retry finishes it


class BackupTrigger(StrEnum):
    """What started a backup: a request, a schedule's slot, the retry of a failed one, or
    an import of what a storage holds (``POST /api/storages/{id}/import``)."""

    MANUAL = "manual"
    SCHEDULE = "schedule"
    RETRY = "retry"
    IMPORT = "import"


# --------------------------------------------------------------------------- users


# SQLite reuses the largest id once its row is deleted unless the table says AUTOINCREMENT:
# a deleted account's id (and whatever still points to it) must never name another one.
# PostgreSQL's sequences never hand a value out twice.
NEVER_REUSE_IDS: dict[str, Any] = {"sqlite_autoincrement": True}


def new_token_key() -> str:
    """The per-account value every token carries: a new one ends all earlier tokens."""
    return secrets.token_urlsafe(32)


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = NEVER_REUSE_IDS

    id: int | None = SQLField(default=None, primary_key=True)
    email: str = SQLField(sa_column=Column(String(320), unique=True, nullable=False))
    password_hash: str = SQLField(sa_column=Column(String(255), nullable=False))
    role: str = SQLField(default=Role.USER.value, sa_column=Column(String(16), nullable=False))
    token_key: str = SQLField(
        default_factory=new_token_key, sa_column=Column(String(64), nullable=False)
    )
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))


class Bootstrap(SQLModel, table=True):
    """One row per step of the instance's life that may happen only once (``first_admin``):
    the primary key makes claiming it atomic, across requests and processes alike."""

    __tablename__ = "bootstrap"

    step: str = SQLField(sa_column=Column(String(32), primary_key=True))
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))


FIRST_ADMIN = "first_admin"


class StrictBody(BaseModel):
    """Request bodies: unknown fields (``user_id``, ``status``...) are a 400, never applied."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("caractère NUL interdit")
    return value


# Self-hosted teams use addresses on private names (ops@corp.local, root@localhost).
# email-validator refuses special-use names from a list that its documentation says to
# edit for this; the others (.invalid, .onion, .arpa, .test) stay refused.
for _private in ("local", "localhost"):
    if _private in email_validator.SPECIAL_USE_DOMAIN_NAMES:
        email_validator.SPECIAL_USE_DOMAIN_NAMES.remove(_private)


# The patterns below tell clients (and schemathesis) exactly what the validators
# accept; the validators stay the authority, for their French messages.
_NO_NUL = r"^[^\x00]*$"
# What str.strip() removes, as character classes: the controls among it, and the others.
_CONTROL_SPACE = r"\t-\r\x1c-\x1f"
_PRINTABLE_SPACE = r"\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_SPACE = _CONTROL_SPACE + _PRINTABLE_SPACE
_NOT_BLANK = rf"^[^\x00]*[^\x00{_SPACE}][^\x00]*$"
# No control character, something besides spaces, no leading '-'.
_IDENTIFIER = rf"^(?:[^\x00-\x1f{_SPACE}-]|[{_PRINTABLE_SPACE}]+[^\x00-\x1f{_SPACE}])[^\x00-\x1f]*$"
_PORT = (
    r"^(?:0{0,4}[1-9]|0{0,3}[1-9][0-9]|0{0,2}[1-9][0-9]{2}|0?[1-9][0-9]{3}"
    r"|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"
)


def normalize_email(value: str) -> str:
    """Lower-cased, validated address after NFKC: uniqueness ignores case and compatibility
    forms (a full-width letter is the letter).

    The syntax is checked in full; the domain need not be deliverable from the internet
    (no DNS lookup, a name without a dot such as ``localhost`` is fine).
    """
    try:
        result = validate_email(
            unicodedata.normalize("NFKC", value),
            check_deliverability=False,
            globally_deliverable=False,
        )
    except EmailNotValidError:
        raise ValueError("adresse e-mail invalide") from None
    return result.normalized.lower()


def canonical_email(value: str) -> str:
    """The form an address is stored in, to look one up: input that would not pass
    registration still compares the same way (it then matches no account)."""
    try:
        return normalize_email(value)
    except ValueError:
        return unicodedata.normalize("NFKC", value).strip().lower()


class UserRegister(StrictBody):
    email: str = Field(max_length=320, json_schema_extra={"format": "email"})
    password: str = Field(min_length=8, max_length=1024, json_schema_extra={"pattern": _NO_NUL})
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


class TokenRequest(BaseModel):
    """``POST /auth/token``'s form (RFC 6749, section 4.3.2), with the bounds of
    ``UserLogin``. Other parameters are ignored, as the RFC asks of unknown ones."""

    # Form fields are never null: absent ones take these defaults.
    grant_type: str = Field(
        default="password", pattern="^password$", description="`password` (may be omitted)"
    )
    username: str = Field(max_length=320, description="The account's e-mail")
    password: str = Field(max_length=1024)
    scope: str = Field(default="", max_length=1024, description="Not used")
    client_id: str = Field(default="", max_length=1024, description="Not used")
    client_secret: str = Field(default="", max_length=1024, description="Not used")


class UserPublic(BaseModel):
    id: int
    email: str
    role: Role
    created_at: Timestamp
    updated_at: Timestamp


class UserRoleUpdate(StrictBody):
    role: Role


class PasswordChange(StrictBody):
    current_password: str = Field(max_length=1024)
    # The rules of registration.
    new_password: str = Field(min_length=8, max_length=1024, json_schema_extra={"pattern": _NO_NUL})
    keep_api_tokens: bool = Field(
        default=False,
        description="Keep the account's personal API tokens (by default a password change "
        "revokes them too: whoever knew the old password may have created some)",
    )

    @field_validator("new_password")
    @classmethod
    def _password(cls, value: str) -> str:
        return _no_nul(value)


class PasswordChanged(BaseModel):
    message: str
    token: str = Field(description="A new token for the caller: every earlier one has ended")
    token_type: str = "bearer"  # noqa: S105 (the scheme's name, not a secret)
    expires_in: int = Field(description="Lifetime of the token, in seconds")
    revoked_api_tokens: int = Field(description="Personal API tokens revoked by the change")


class OAuth2Token(BaseModel):
    """The OAuth2 password flow's answer (RFC 6749, section 5.1)."""

    access_token: str
    token_type: Literal["bearer"]
    expires_in: int = Field(description="Lifetime of the token, in seconds")


# --------------------------------------------------------------------------- API tokens

#: Personal API tokens start with this, so that they are recognised (by the service, which
#: never tries to decode them as JWTs, and by secret scanners) at a glance.
API_TOKEN_PREFIX = "bak_"  # noqa: S105 (the public prefix)
MAX_API_TOKEN_DAYS = 3650


class ApiToken(SQLModel, table=True):
    """A personal API token: only the SHA-256 of its secret is kept."""

    __tablename__ = "api_tokens"
    __table_args__ = NEVER_REUSE_IDS

    id: int | None = SQLField(default=None, primary_key=True)
    user_id: int = SQLField(
        sa_column=Column(
            Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    name: str = SQLField(sa_column=Column(String(100), nullable=False))
    token_hash: str = SQLField(sa_column=Column(String(64), nullable=False, unique=True))
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))
    expires_at: datetime | None = _tz_column(nullable=True)
    last_used_at: datetime | None = _tz_column(nullable=True)


class ApiTokenCreate(StrictBody):
    name: str = Field(
        min_length=1,
        max_length=100,
        json_schema_extra={"pattern": _NOT_BLANK},
        description="What the token is for (`ci`, `nightly-export`)",
    )
    expires_in_days: int | None = Field(
        default=90,
        ge=1,
        le=MAX_API_TOKEN_DAYS,
        description=f"Days until the token stops working (1 to {MAX_API_TOKEN_DAYS}); "
        "`null`: it never expires",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("expires_in_days", mode="before")
    @classmethod
    def _days(cls, value: object) -> object:
        return _id_not_bool(value)


class ApiTokenPublic(BaseModel):
    id: int
    name: str
    created_at: Timestamp
    expires_at: OptionalTimestamp = Field(description="null: never expires")
    last_used_at: OptionalTimestamp = Field(
        description="Last request made with the token (to the minute); null: never used"
    )


# --------------------------------------------------------------------------- databases


class Database(SQLModel, table=True):
    __tablename__ = "databases"
    __table_args__ = NEVER_REUSE_IDS

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
    # Whether backups keep a copy in the service's own backup root (the "local" destination).
    keep_local: bool = SQLField(
        default=True,
        sa_column=Column(Boolean, nullable=False, default=True, server_default=true()),
    )
    # A restore drills' target: the service overwrites it freely (see services.drills).
    scratch: bool = SQLField(
        default=False,
        sa_column=Column(Boolean, nullable=False, default=False, server_default=false()),
    )
    # How new backups are encrypted: null (not), "recipients" (age X25519 public keys, a
    # JSON list: public, kept plain) or "passphrase" (scrypt; the passphrase as a Fernet token).
    encryption_mode: str | None = SQLField(
        default=None, sa_column=Column(String(16), nullable=True)
    )
    encryption_recipients: str | None = SQLField(
        default=None, sa_column=Column(Text, nullable=True)
    )
    encryption_passphrase_encrypted: str | None = SQLField(
        default=None, sa_column=Column(Text, nullable=True)
    )


_HOSTNAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}$"
_HOSTNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}")


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
        if not _HOSTNAME.fullmatch(value):
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
    elif isinstance(value, float) and value.is_integer():
        # JSON has one number type: 5432.0 is the integer 5432 to JSON Schema too.
        number = int(value)
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


def _db_type(value: object) -> str:
    # "mariadb" is stored as "mysql"; an unsupported type is refused by the service, with
    # the list of supported ones.
    return canonical_type(_check_type(value))


def _check_name(value: str) -> str:
    value = _no_nul(value)
    if not value.strip():
        raise ValueError("ne doit pas être vide")
    return value


Host = Annotated[
    str,
    Field(max_length=255),
    BeforeValidator(_check_type),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1, "pattern": _HOSTNAME_PATTERN},
                {"type": "string", "format": "ipv6", "maxLength": 255},
            ],
            "description": "Host name, IPv4 or IPv6 address",
            "examples": ["db.example.com"],
        }
    ),
]
PortValue = Annotated[
    str,
    BeforeValidator(_check_port),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _PORT},
                {"type": "integer", "minimum": 1, "maximum": 65535},
            ],
            "description": "TCP port, as a string or a number; answered as a string",
            "examples": ["5432"],
        }
    ),
]
Identifier = Annotated[
    str, Field(min_length=1, max_length=128, json_schema_extra={"pattern": _IDENTIFIER})
]
DbPassword = Annotated[str, Field(max_length=1024, json_schema_extra={"pattern": _NO_NUL})]
DbType = Annotated[
    str,
    BeforeValidator(_db_type),
    Field(max_length=32, json_schema_extra={"enum": accepted_types()}),
]


MIN_PASSPHRASE = 12
# The shape of age keys (Bech32: its alphabet); the validators check the checksum too.
_BECH32_CHARS = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_RECIPIENT = rf"^age1[{_BECH32_CHARS}]{{58}}$"
_IDENTITY = rf"^AGE-SECRET-KEY-1[{_BECH32_CHARS.upper()}]{{58}}$"
MAX_RECIPIENTS = 20


def _encryption_schema(schema: dict[str, Any]) -> None:
    """Exactly one of the two fields, neither null; recipients of an age key's shape."""
    _without_null(schema)
    recipients = schema["properties"]["recipients"]
    recipients["items"] = {"type": "string", "pattern": _RECIPIENT}
    recipients["minItems"] = 1
    schema["oneOf"] = [{"required": ["recipients"]}, {"required": ["passphrase"]}]


class EncryptionSettings(StrictBody):
    """How a database's new backups are encrypted, in the age format: to ``recipients``
    (age X25519 public keys: the service can encrypt, never decrypt) or with a
    ``passphrase`` (scrypt: the service keeps it, encrypted, and restores on its own)."""

    model_config = ConfigDict(json_schema_extra=_encryption_schema)

    recipients: list[str] | None = Field(
        default=None,
        max_length=MAX_RECIPIENTS,
        description="age public keys (`age1...`, from `age-keygen -y key.txt`)",
    )
    passphrase: str | None = Field(
        default=None,
        min_length=MIN_PASSPHRASE,
        max_length=1024,
        repr=False,
        description=f"At least {MIN_PASSPHRASE} characters; never returned",
        json_schema_extra={"pattern": _NOT_BLANK},
    )

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("au moins un destinataire")
        for recipient in value:
            # ValueError: a French message, never the input; the shape first, as documented.
            parse_recipient("" if not re.fullmatch(_RECIPIENT, recipient) else recipient)
        return value

    @field_validator("passphrase")
    @classmethod
    def _passphrase(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("phrase secrète vide")
        return None if value is None else _no_nul(value)

    @model_validator(mode="after")
    def _one_mode(self) -> EncryptionSettings:
        if any(getattr(self, name) is None for name in self.model_fields_set):
            raise ValueError("null refusé: omettez le champ")
        if (self.recipients is None) == (self.passphrase is None):
            raise ValueError("indiquez soit recipients, soit passphrase (un seul des deux)")
        return self


class RecipientsEncryption(BaseModel):
    mode: Literal["recipients"]
    recipients: list[str]


class PassphraseEncryption(BaseModel):
    mode: Literal["passphrase"]


EncryptionPublic = Annotated[
    RecipientsEncryption | PassphraseEncryption, Field(discriminator="mode")
]


def _distinct_ids(value: list[int]) -> list[int]:
    if len(set(value)) != len(value):
        raise ValueError("un stockage ne peut figurer qu'une fois")
    return value


#: An id inside a list: ``Field`` there would not become the item schema's bounds.
_ItemId = Annotated[int, Ge(1), Le(MAX_ID), BeforeValidator(_id_not_bool)]
#: Destinations of a database's backups: storage ids, in order, each once.
StorageIds = Annotated[
    list[_ItemId],
    Field(max_length=MAX_DESTINATIONS, json_schema_extra={"uniqueItems": True}),
    AfterValidator(_distinct_ids),
]


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
    name: str = Field(min_length=1, max_length=255, json_schema_extra={"pattern": _NOT_BLANK})
    type: DbType
    host: Host
    port: PortValue
    username: Identifier
    password: DbPassword = ""
    db_name: Identifier
    storage_ids: StorageIds = Field(
        default_factory=list,
        description="The caller's storages (ids) this database's backups are sent to, in "
        "this order",
    )
    keep_local: bool = Field(
        default=True,
        strict=True,
        description="Keep a copy in the service's own backup root (the `local` destination)",
    )
    encryption: EncryptionSettings | None = Field(
        default=None,
        description="null (default): backups are plain ZIPs; else how they are encrypted",
    )
    scratch: bool = Field(
        default=False,
        strict=True,
        description="A restore drills' target, overwritten freely by the service; "
        "needs `confirm` set to its `db_name`",
    )
    confirm: str | None = Field(
        default=None,
        max_length=128,
        description="The database's `db_name`, required to mark it `scratch`",
    )


#: Optional body fields whose ``null`` means something (``encryption: null``: none).
NULLABLE_FIELDS = frozenset({"encryption"})


def _without_null(schema: dict[str, Any]) -> None:
    """JSON schema hook for bodies whose optional fields may be omitted but not null: the
    fields stay ``X | None`` (so errors name them plainly), the document offers no null."""
    null = {"type": "null"}
    for name, field in schema.get("properties", {}).items():
        if name in NULLABLE_FIELDS:
            continue
        branches = field.get("anyOf")
        if branches and null in branches:
            rest = [branch for branch in branches if branch != null]
            del field["anyOf"]
            if len(rest) == 1:
                field.update(rest[0])
            else:
                field["anyOf"] = rest
        if field.get("default", ...) is None:
            del field["default"]


class DatabaseUpdate(DatabaseFields):
    """A PUT may omit fields, which keeps them (a missing ``password`` keeps the stored
    one); ``null`` is refused rather than read as "keep" or "clear"."""

    model_config = ConfigDict(json_schema_extra=_without_null)

    name: str | None = Field(
        default=None, min_length=1, max_length=255, json_schema_extra={"pattern": _NOT_BLANK}
    )
    type: DbType | None = None
    host: Host | None = None
    port: PortValue | None = None
    username: Identifier | None = None
    password: DbPassword | None = None
    db_name: Identifier | None = None
    storage_ids: StorageIds | None = Field(
        default=None, description="Replaces the list of destinations (in this order)"
    )
    keep_local: bool | None = Field(default=None, strict=True)
    encryption: EncryptionSettings | None = Field(
        default=None,
        description="How new backups are encrypted; null turns encryption off (older "
        "backups keep theirs)",
    )
    scratch: bool | None = Field(
        default=None,
        strict=True,
        description="A restore drills' target; `true` needs `confirm` set to its `db_name`",
    )
    confirm: str | None = Field(
        default=None, max_length=128, description="The `db_name`, to mark it `scratch`"
    )

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object, info: ValidationInfo) -> object:
        if value is None and info.field_name not in NULLABLE_FIELDS:
            raise ValueError("null refusé: omettez le champ pour garder sa valeur")
        return value


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
        description="PostgreSQL server version, read at registration and before each "
        "backup or restore (null: unknown, or MySQL)",
    )
    encryption: EncryptionPublic | None = Field(
        default=None,
        description="null: new backups are plain ZIPs; `recipients` (with the keys) or "
        "`passphrase` (never returned): how they are encrypted (age format)",
    )
    storage_ids: list[int] = Field(
        default_factory=list, description="The storages its backups are sent to, in order"
    )
    keep_local: bool = Field(
        default=True, description="Whether its backups keep a copy in the service's backup root"
    )
    scratch: bool = Field(
        default=False,
        description="A restore drills' target: the service overwrites it freely",
    )


# --------------------------------------------------------------------------- backups


class Backup(SQLModel, table=True):
    __tablename__ = "backups"
    # Listing is "a user's backups, newest first": served by one index walk.
    __table_args__ = (Index("ix_backups_user_id_id", "user_id", "id"), NEVER_REUSE_IDS)

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
    # The source as it was at backup time, so that a listing still says what a backup is
    # once its database is deleted (null only for backups older than these columns).
    database_name: str | None = SQLField(default=None, sa_column=Column(String(255), nullable=True))
    db_host: str | None = SQLField(default=None, sa_column=Column(String(255), nullable=True))
    db_port: str | None = SQLField(default=None, sa_column=Column(String(5), nullable=True))
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
    # Kept out of retention for good (see backup_api.retention).
    pinned: bool = SQLField(
        default=False,
        sa_column=Column(Boolean, nullable=False, default=False, server_default=false()),
    )
    trigger: str = SQLField(
        default=BackupTrigger.MANUAL.value,
        sa_column=Column(
            String(16),
            nullable=False,
            default=BackupTrigger.MANUAL.value,
            server_default=BackupTrigger.MANUAL.value,
        ),
    )
    # Wrapped in the age format: to these recipients (a JSON list, public keys) or with
    # this passphrase (a Fernet token), as the database's setting was when it was taken,
    # so a later change of the setting never strands it.
    encrypted: bool = SQLField(
        default=False,
        sa_column=Column(Boolean, nullable=False, default=False, server_default=false()),
    )
    encryption_recipients: str | None = SQLField(
        default=None, sa_column=Column(Text, nullable=True)
    )
    encryption_passphrase_encrypted: str | None = SQLField(
        default=None, sa_column=Column(Text, nullable=True)
    )
    # Each table's rows in the dump, as JSON text ({"public.items": 500}): text, not a
    # JSON type, so a row stays hashable for the listing's render cache.
    table_rows: str | None = SQLField(default=None, sa_column=Column(Text, nullable=True))
    # The newest drill of this backup that ended, kept here so that listings read it
    # with the row itself (no query per page).
    last_drill_id: int | None = SQLField(default=None, sa_column=Column(Integer, nullable=True))
    last_drill_status: str | None = SQLField(
        default=None, sa_column=Column(String(16), nullable=True)
    )
    last_drill_finished_at: datetime | None = _tz_column(nullable=True)


class LastDrill(BaseModel):
    id: int
    status: str = Field(description="`passed` or `failed`")
    finished_at: OptionalTimestamp


class JobProgressPublic(BaseModel):
    """A running job's live figures (in the service's memory, updated several times a
    second). The SQL stream is what is measured: a backup's dump (``bytes_read``), a
    restore's SQL handed to the restore tool (``bytes_written``)."""

    bytes_read: int = Field(
        description="Backup: SQL read from the dump tool. Restore: bytes of the archive read"
    )
    bytes_written: int = Field(
        description="Backup: archive bytes written (to each destination). Restore: SQL "
        "written to the restore tool"
    )
    bytes_per_second: int = Field(
        description="The SQL stream's rate over the last five seconds (0 when stalled)"
    )
    estimated_total_bytes: int | None = Field(
        description="Expected size of the SQL stream: the last completed backup's "
        "`dump_size` of the same database, else the server's own figure (PostgreSQL: its "
        "tables' pages; MySQL: `information_schema`); a restore: the backup's `dump_size`. "
        "null when unknown"
    )
    eta_seconds: float | None = Field(
        description="Seconds left at the current rate; null when the estimate or the rate "
        "is unknown, or the stream went past the estimate"
    )


#: The fields a job's record has while it runs (null otherwise).
PHASE_DESCRIPTION = (
    "While the job is `pending`: `queued`, then `dumping` (a backup) or `restoring` (a "
    "restore), then `finishing`; null once it has ended"
)
PROGRESS_DESCRIPTION = "The live figures while the job runs; null otherwise"


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
    checksum: str | None = Field(
        description="SHA-256 of the stored file (hexadecimal): the ZIP archive, or the "
        "`.zip.age` file when encrypted"
    )
    db_type: str
    dump_size: int | None = Field(description="Size of the uncompressed SQL dump, in bytes")
    started_at: OptionalTimestamp
    finished_at: OptionalTimestamp
    duration_seconds: float | None
    database_name: str | None = Field(
        description="Name of the source database's registration when the backup was taken"
    )
    db_name: str = Field(description="Name of the database on the source server")
    db_host: str | None = Field(description="Host of the source server")
    db_port: str | None = Field(description="Port of the source server")
    dump_tool_version: str | None = Field(
        default=None,
        description="Version of the pg_dump that wrote the dump (PostgreSQL); a restore "
        "uses a psql at least as new",
    )
    pinned: bool = Field(
        default=False, description="Kept out of retention: no sweep ever deletes it"
    )
    trigger: BackupTrigger = Field(
        default=BackupTrigger.MANUAL,
        description="`manual` (a request), `schedule` (a slot of the database's schedule), "
        "`retry` (a new attempt after a scheduled backup failed) or `import` (found in a "
        "storage by `POST /api/storages/{id}/import`)",
    )
    copies: list[CopyPublic] = Field(
        default_factory=list,
        description="One per destination. `status` is `completed` when every copy is "
        "complete; the complete ones stay usable when another failed",
    )
    encrypted: bool = Field(
        default=False,
        description="The stored file is the ZIP wrapped in the age format (`.zip.age`)",
    )
    table_rows: dict[str, int] | None = Field(
        default=None,
        description="Each table's row count in the dump, counted while it was archived "
        "(null: not counted)",
    )
    last_drill: LastDrill | None = Field(
        default=None, description="The newest restore drill of this backup that ended"
    )
    # Together, in this order: the rendered rows' cache puts the live values in their place
    # (services/backups.py).
    phase: JobPhase | None = Field(default=None, description=PHASE_DESCRIPTION)
    progress: JobProgressPublic | None = Field(default=None, description=PROGRESS_DESCRIPTION)


class StorageImport(BaseModel):
    """What ``POST /api/storages/{id}/import`` found in a bucket."""

    message: str
    found: int = Field(description="Backups (manifests) found under the storage's prefix")
    imported: list[BackupPublic] = Field(
        description="Those this service did not know, now recorded"
    )
    known: int = Field(description="Those it already knew (a copy of one of its backups)")
    invalid: list[str] = Field(
        description="Keys of manifests that could not be read, or whose archive is missing"
    )


class CopyPublic(BaseModel):
    """One destination's copy of a backup."""

    storage_id: int | None = Field(
        description="The storage holding it; null for the service's own backup root "
        "(`local`), or once the storage is deleted"
    )
    storage_name: str = Field(description="`local`, or the storage's name")
    location: str = Field(
        description="Path under the backup root (`local`), else `s3://bucket/key`"
    )
    status: CopyStatus
    size: int | None = Field(description="Bytes stored, once complete")
    error_msg: str | None = Field(description="Why it failed (French), when it did")
    retain_until: OptionalTimestamp = Field(
        default=None, description="Under S3 Object Lock until then: no deletion before"
    )


class BackupUpdate(StrictBody):
    pinned: bool = Field(strict=True, description="true: retention never deletes this backup")


# --------------------------------------------------------------------------- storages


class Storage(SQLModel, table=True):
    """An off-site destination (an S3-compatible bucket) that one user owns."""

    __tablename__ = "storages"
    __table_args__ = NEVER_REUSE_IDS

    id: int | None = SQLField(default=None, primary_key=True)
    user_id: int = SQLField(
        sa_column=Column(
            Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    name: str = SQLField(sa_column=Column(String(100), nullable=False))
    type: str = SQLField(sa_column=Column(String(16), nullable=False))
    endpoint: str = SQLField(sa_column=Column(String(1024), nullable=False))
    region: str = SQLField(sa_column=Column(String(64), nullable=False))
    bucket: str = SQLField(sa_column=Column(String(255), nullable=False))
    prefix: str = SQLField(sa_column=Column(String(512), nullable=False))
    access_key_id: str = SQLField(sa_column=Column(String(255), nullable=False))
    # Fernet token of the secret key, like database passwords ("" encrypted when empty).
    secret_encrypted: str = SQLField(sa_column=Column(Text, nullable=False))
    path_style: bool = SQLField(default=True, sa_column=Column(Boolean, nullable=False))
    # Days an object stays under S3 Object Lock (compliance mode); null: not locked.
    object_lock_days: int | None = SQLField(default=None, sa_column=Column(Integer, nullable=True))
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))


class DatabaseStorage(SQLModel, table=True):
    """A destination a database's backups go to, in the order the owner gave."""

    __tablename__ = "database_storages"

    database_id: int = SQLField(
        sa_column=Column(Integer, ForeignKey("databases.id", ondelete="CASCADE"), primary_key=True)
    )
    # RESTRICT: a destination that databases still send backups to is not deleted (409).
    storage_id: int = SQLField(
        sa_column=Column(
            Integer,
            ForeignKey("storages.id", ondelete="RESTRICT"),
            primary_key=True,
            index=True,
        )
    )
    position: int = SQLField(sa_column=Column(Integer, nullable=False))


class BackupCopy(SQLModel, table=True):
    """One destination's copy of a backup's archive (the local backup root or a storage)."""

    __tablename__ = "backup_copies"
    __table_args__ = (
        Index("ix_backup_copies_backup_id", "backup_id"),
        Index("ix_backup_copies_retry", "status", "next_retry_at"),
        NEVER_REUSE_IDS,
    )

    id: int | None = SQLField(default=None, primary_key=True)
    backup_id: int = SQLField(
        sa_column=Column(Integer, ForeignKey("backups.id", ondelete="CASCADE"), nullable=False)
    )
    # Null for the local copy; kept null too once its storage is gone (its row stays
    # to say where the object was).
    storage_id: int | None = SQLField(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("storages.id", ondelete="SET NULL"), nullable=True, index=True
        ),
    )
    #: "local" or a storage type ("s3").
    kind: str = SQLField(sa_column=Column(String(16), nullable=False))
    storage_name: str = SQLField(sa_column=Column(String(100), nullable=False))
    # The relative path under the backup root for "local", else ``s3://bucket/key``.
    location: str = SQLField(sa_column=Column(String(2048), nullable=False))
    # The object's key in its bucket (null for "local").
    object_key: str | None = SQLField(default=None, sa_column=Column(String(1024), nullable=True))
    status: str = SQLField(
        default=CopyStatus.PENDING.value, sa_column=Column(String(16), nullable=False)
    )
    size: int | None = SQLField(default=None, sa_column=Column(BigInteger, nullable=True))
    error_msg: str | None = SQLField(default=None, sa_column=Column(Text, nullable=True))
    # The object version S3 gave (versioned and locked buckets); a deletion names it.
    version_id: str | None = SQLField(default=None, sa_column=Column(String(1024), nullable=True))
    # Under Object Lock until then: nobody can delete it before.
    retain_until: datetime | None = _tz_column(nullable=True)
    attempts: int = SQLField(default=0, sa_column=Column(Integer, nullable=False, default=0))
    next_retry_at: datetime | None = _tz_column(nullable=True)
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))


#: Object Lock's longest retention accepted (a hundred years).
MAX_LOCK_DAYS = 36_500

# The patterns below describe exactly what the validators accept (see DatabaseCreate's).
# An endpoint: http(s), a host name or IPv4 address, an optional port and path; never
# credentials, a query or a fragment. (A bracketed IPv6 address is accepted beyond it.)
_ENDPOINT_HOST = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}"
_ENDPOINT_PATH = r"(?:/[A-Za-z0-9._~/-]*)?"
_ENDPOINT_PATTERN = rf"^https?://{_ENDPOINT_HOST}(?::{_PORT[1:-1]})?{_ENDPOINT_PATH}$"
_ENDPOINT = re.compile(_ENDPOINT_PATTERN)
_ENDPOINT_IPV6 = re.compile(rf"https?://\[([0-9A-Fa-f:.]+)\](?::{_PORT[1:-1]})?{_ENDPOINT_PATH}")
# A bucket name as S3 defines it, in its DNS-compatible form: 3 to 63 characters, labels of
# lowercase letters, digits and hyphens separated by single dots, each starting and ending
# with a letter or digit; not an IPv4 address, not starting with xn-- or sthree-, not
# ending with -s3alias or --ol-s3 (S3's reserved forms).
_BUCKET_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_BUCKET_PATTERN = rf"^{_BUCKET_LABEL}(?:\.{_BUCKET_LABEL})*$"
_BUCKET_RESERVED_PATTERN = (
    r"^(?:[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+|xn--.*|sthree-.*|.*-s3alias|.*--ol-s3)$"
)
_BUCKET = re.compile(_BUCKET_PATTERN)
_BUCKET_RESERVED = re.compile(_BUCKET_RESERVED_PATTERN, re.DOTALL)
# A prefix: segments of letters, digits, '.', '_' and '-' separated by '/', none of them
# '.' or '..', no leading '/' (a trailing one is allowed: keys are prefix/type/file).
_PREFIX_SEGMENT = (
    r"(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9._-]+))"
)
_PREFIX_PATTERN = rf"^(?:{_PREFIX_SEGMENT}(?:/{_PREFIX_SEGMENT})*/?)?$"
_PREFIX = re.compile(_PREFIX_PATTERN)
# A region as botocore accepts one: letters, digits and inner hyphens, up to 63, not
# digits only.
_REGION_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
_DIGITS_PATTERN = r"^[0-9]+$"
# Keys: printable ASCII without spaces (an empty pair means unsigned requests).
_KEY_PATTERN = r"^[!-~]*$"


def check_endpoint(value: str) -> str:
    if _ENDPOINT.fullmatch(value):
        return value
    ipv6 = _ENDPOINT_IPV6.fullmatch(value)
    if ipv6:
        try:
            ipaddress.IPv6Address(ipv6.group(1))
        except ValueError:
            raise ValueError("adresse IPv6 invalide") from None
        return value
    scheme, _, rest = value.partition("://")
    if scheme not in ("http", "https") or not rest:
        raise ValueError("URL http:// ou https:// attendue")
    authority = rest.split("/", 1)[0]
    if "@" in authority:
        raise ValueError("identifiants interdits dans l'URL: utilisez access_key_id")
    if "?" in rest:
        raise ValueError("paramètres de requête interdits dans l'URL")
    if "#" in rest:
        raise ValueError("fragment interdit dans l'URL")
    raise ValueError("URL invalide (hôte, port ou chemin)")


def _check_bucket(value: str) -> str:
    if not 3 <= len(value) <= 63:
        raise ValueError("de 3 à 63 caractères")
    if not _BUCKET.fullmatch(value):
        raise ValueError(
            "minuscules, chiffres, '-' et '.' entre des parties commençant et finissant par "
            "une lettre ou un chiffre"
        )
    if _BUCKET_RESERVED.fullmatch(value):
        raise ValueError("nom réservé par S3 (adresse IP, xn--, sthree-, -s3alias, --ol-s3)")
    return value


def _check_prefix(value: str) -> str:
    if _PREFIX.fullmatch(value):
        return value
    if value.startswith("/"):
        raise ValueError("ne doit pas commencer par '/'")
    if any(segment in (".", "..") for segment in value.split("/")):
        raise ValueError("segments '.' et '..' interdits")
    raise ValueError("lettres, chiffres, '.', '_' et '-', en segments séparés par un '/'")


def _check_region(value: str) -> str:
    if not value:
        raise ValueError("région requise")
    if not re.fullmatch(_REGION_PATTERN, value):
        raise ValueError("lettres, chiffres et '-' (ni au début ni à la fin) seulement")
    if re.fullmatch(_DIGITS_PATTERN, value):
        raise ValueError("pas seulement des chiffres")
    return value


def _check_key(value: str) -> str:
    if not re.fullmatch(_KEY_PATTERN, value):
        raise ValueError("caractères ASCII imprimables sans espace seulement")
    return value


_STORAGE_CHECKS = {
    "endpoint": check_endpoint,
    "bucket": _check_bucket,
    "prefix": _check_prefix,
    "region": _check_region,
    "access_key_id": _check_key,
    "secret_access_key": _check_key,
}

StorageName = Annotated[
    str, Field(min_length=1, max_length=100, json_schema_extra={"pattern": _NOT_BLANK})
]
Endpoint = Annotated[
    str,
    Field(
        max_length=1024,
        description="The S3 API's URL: `http(s)://host[:port][/path]`, without credentials, "
        "query or fragment",
        examples=["https://s3.eu-west-3.amazonaws.com"],
        json_schema_extra={"pattern": _ENDPOINT_PATTERN},
    ),
]
Bucket = Annotated[
    str,
    Field(
        min_length=3,
        max_length=63,
        description="Bucket name (S3's rules)",
        examples=["backups"],
        json_schema_extra={
            "pattern": _BUCKET_PATTERN,
            "not": {"pattern": _BUCKET_RESERVED_PATTERN},
        },
    ),
]
Prefix = Annotated[
    str,
    Field(
        max_length=512,
        description="Keys start with it: `{prefix}/{type}/{filename}`; no leading '/', no "
        "'.' or '..' segment",
        examples=["prod/backup-api"],
        json_schema_extra={"pattern": _PREFIX_PATTERN},
    ),
]
Region = Annotated[
    str,
    Field(
        min_length=1,
        max_length=63,
        json_schema_extra={"pattern": _REGION_PATTERN, "not": {"pattern": _DIGITS_PATTERN}},
    ),
]
AccessKeyId = Annotated[
    str,
    Field(
        max_length=255,
        description="Empty (with an empty secret): unsigned requests, for public buckets",
        json_schema_extra={"pattern": _KEY_PATTERN},
    ),
]
SecretKey = Annotated[
    str,
    Field(
        max_length=1024,
        description="Write-only: encrypted at rest, never returned",
        json_schema_extra={"pattern": _KEY_PATTERN, "writeOnly": True},
    ),
]
LockDays = Annotated[int, Field(ge=1, le=MAX_LOCK_DAYS), BeforeValidator(_id_not_bool)]


class StorageFields(StrictBody):
    @field_validator(*_STORAGE_CHECKS, check_fields=False)
    @classmethod
    def _checked(cls, value: str | None, info: Any) -> str | None:
        return None if value is None else _STORAGE_CHECKS[info.field_name](_no_nul(value))

    @field_validator("name", check_fields=False)
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else _check_name(value)


class StorageCreate(StorageFields):
    name: StorageName
    type: StorageType = Field(default=StorageType.S3, description="`s3` (S3-compatible)")
    endpoint: Endpoint
    region: Region = "us-east-1"
    bucket: Bucket
    prefix: Prefix = ""
    access_key_id: AccessKeyId = ""
    secret_access_key: SecretKey = ""
    path_style: bool = Field(
        default=True,
        strict=True,
        description="Path-style addressing (`endpoint/bucket/key`, what most S3-compatible "
        "servers want); false: virtual-hosted (`bucket.endpoint/key`)",
    )
    object_lock_days: LockDays | None = Field(
        default=None,
        description="Write objects under S3 Object Lock (compliance mode) for this many days "
        "(the bucket must have Object Lock enabled); null: not locked",
    )


def _storage_update_schema(schema: dict[str, Any]) -> None:
    """As ``_without_null``, except ``object_lock_days``, whose null turns the lock off."""
    lock = schema.get("properties", {}).get("object_lock_days")
    kept = copy.deepcopy(lock)
    _without_null(schema)
    if kept is not None:
        schema["properties"]["object_lock_days"] = kept


class StorageUpdate(StorageFields):
    """A PUT may omit fields, which keeps them (a missing ``secret_access_key`` keeps the
    stored one); ``null`` is refused, except ``object_lock_days: null`` (no lock)."""

    model_config = ConfigDict(json_schema_extra=_storage_update_schema)

    name: StorageName | None = None
    endpoint: Endpoint | None = None
    region: Region | None = None
    bucket: Bucket | None = None
    prefix: Prefix | None = None
    access_key_id: AccessKeyId | None = None
    secret_access_key: SecretKey | None = Field(
        default=None, description="Required when `endpoint` or `bucket` changes"
    )
    path_style: bool | None = Field(default=None, strict=True)
    object_lock_days: LockDays | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object, info: Any) -> object:
        if value is None and info.field_name != "object_lock_days":
            raise ValueError("null refusé: omettez le champ pour garder sa valeur")
        return value


class StoragePublic(BaseModel):
    id: int
    name: str
    type: StorageType
    endpoint: str
    region: str
    bucket: str
    prefix: str
    access_key_id: str
    path_style: bool
    object_lock_days: int | None
    created_at: Timestamp
    updated_at: Timestamp
    user_id: int


class StorageEnvelope(BaseModel):
    message: str
    storage: StoragePublic


class StorageItem(BaseModel):
    storage: StoragePublic


class StorageList(BaseModel):
    storages: list[StoragePublic]


class StorageTestResult(BaseModel):
    ok: bool
    error: str | None = Field(
        default=None,
        description="Why the storage cannot hold backups (when `ok` is false): refused "
        "credentials, missing bucket, unreachable endpoint, TLS error...",
    )


# --------------------------------------------------------------------------- retention

#: Upper bounds of a policy's counts: far beyond any real use, small enough to compute.
MAX_KEEP = 10_000
MAX_AGE_DAYS = 36_500


class RetentionPolicy(SQLModel, table=True):
    """A database's retention policy; none means every backup is kept."""

    __tablename__ = "retention_policies"

    database_id: int = SQLField(
        sa_column=Column(Integer, ForeignKey("databases.id", ondelete="CASCADE"), primary_key=True)
    )
    keep_last: int = SQLField(default=0, sa_column=Column(Integer, nullable=False))
    keep_hourly: int = SQLField(default=0, sa_column=Column(Integer, nullable=False))
    keep_daily: int = SQLField(default=0, sa_column=Column(Integer, nullable=False))
    keep_weekly: int = SQLField(default=0, sa_column=Column(Integer, nullable=False))
    keep_monthly: int = SQLField(default=0, sa_column=Column(Integer, nullable=False))
    keep_yearly: int = SQLField(default=0, sa_column=Column(Integer, nullable=False))
    max_age_days: int | None = SQLField(default=None, sa_column=Column(Integer, nullable=True))
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))


def _count_not_bool(value: object) -> object:
    # JSON ``true`` would otherwise be read as the count 1.
    if isinstance(value, bool):
        raise ValueError("entier positif ou nul attendu")
    return value


KeepCount = Annotated[int, Field(ge=0, le=MAX_KEEP), BeforeValidator(_count_not_bool)]


class RetentionPolicyBody(StrictBody):
    """A policy to save or to try. Omitted counts are 0; ``max_age_days`` null is no limit.
    A policy without any rule removes nothing (as restic's ``forget`` without one)."""

    keep_last: KeepCount = 0
    keep_hourly: KeepCount = 0
    keep_daily: KeepCount = 0
    keep_weekly: KeepCount = 0
    keep_monthly: KeepCount = 0
    keep_yearly: KeepCount = 0
    max_age_days: (
        Annotated[int, Field(ge=1, le=MAX_AGE_DAYS), BeforeValidator(_count_not_bool)] | None
    ) = None


class RetentionPublic(BaseModel):
    database_id: int
    keep_last: int
    keep_hourly: int
    keep_daily: int
    keep_weekly: int
    keep_monthly: int
    keep_yearly: int
    max_age_days: int | None
    created_at: Timestamp
    updated_at: Timestamp


class RetentionEnvelope(BaseModel):
    message: str
    retention: RetentionPublic


class RetentionItem(BaseModel):
    retention: RetentionPublic


class PreviewKeep(BaseModel):
    backup_id: int
    reasons: list[str] = Field(
        description="Why it stays: newest, pinned, young, pending, running, last, hourly, "
        "daily, weekly, monthly, yearly, max_age (younger than max_age_days, the only rule), "
        "no_policy (no policy, or one without any rule), failed (a failed record not yet "
        "expired)"
    )


class PreviewDelete(BaseModel):
    backup_id: int
    created_at: Timestamp
    reason: str = Field(
        description="policy (no rule keeps it), max_age (older than max_age_days) or "
        "failed (a failed record older than BACKUP_API_RETENTION_FAILED_DAYS)"
    )


class RetentionPreview(BaseModel):
    keep: list[PreviewKeep]
    delete: list[PreviewDelete]


# --------------------------------------------------------------------------- schedules


class Schedule(SQLModel, table=True):
    """When a database is backed up on its own, and where its schedule stands.

    ``next_run_at`` is the slot to run next: a process claims it by moving it forward
    with one conditional update, so two processes never both run it. ``retry_at`` and
    ``retry_attempt`` are the retries of the last slot's failed backup, kept here so that
    a restart keeps them too.
    """

    __tablename__ = "schedules"
    __table_args__ = NEVER_REUSE_IDS

    id: int | None = SQLField(default=None, primary_key=True)
    database_id: int = SQLField(
        sa_column=Column(
            Integer,
            ForeignKey("databases.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        )
    )
    cron: str = SQLField(sa_column=Column(String(128), nullable=False))
    timezone: str = SQLField(sa_column=Column(String(64), nullable=False))
    enabled: bool = SQLField(default=True, sa_column=Column(Boolean, nullable=False))
    next_run_at: datetime | None = _tz_column(nullable=True)
    last_run_at: datetime | None = _tz_column(nullable=True)
    last_backup_id: int | None = SQLField(
        default=None,
        sa_column=Column(
            Integer,
            ForeignKey("backups.id", ondelete="SET NULL", name="fk_schedules_last_backup_id"),
            nullable=True,
        ),
    )
    skipped_runs: int = SQLField(default=0, sa_column=Column(Integer, nullable=False, default=0))
    retry_attempt: int = SQLField(default=0, sa_column=Column(Integer, nullable=False, default=0))
    retry_at: datetime | None = _tz_column(nullable=True)
    # A monitor's URL (healthchecks.io style) pinged when a scheduled backup ends: a
    # Fernet token (it carries the check's token), and the masked form shown back.
    heartbeat_url_encrypted: str | None = SQLField(
        default=None, sa_column=Column(Text, nullable=True)
    )
    heartbeat_url_masked: str | None = SQLField(
        default=None, sa_column=Column(String(300), nullable=True)
    )
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))


# Every zone the service knows: a client (and Swagger UI) can offer them.
_ZONES: list[JsonValue] = [*sorted(known_zones())]


class ScheduleUpdate(StrictBody):
    cron: str = Field(
        max_length=128,
        description="Five fields (minute hour day-of-month month day-of-week), or "
        "`@hourly`, `@daily`, `@weekly`, `@monthly`",
        examples=["0 3 * * *"],
        json_schema_extra={"pattern": EXPRESSION_PATTERN},
    )
    timezone: str = Field(
        default="UTC",
        max_length=64,
        description="IANA zone the times are read in",
        examples=["Europe/Paris"],
        json_schema_extra={"enum": _ZONES},
    )
    enabled: bool = Field(default=True, strict=True)
    heartbeat_url: str | None = Field(
        default=None,
        max_length=MAX_CHANNEL_URL,
        description="http(s) URL of an outside monitor (healthchecks.io style), pinged "
        "(GET) when a scheduled or retry backup completes and at `<url>/fail` when it "
        "fails. Write-only: encrypted at rest, shown masked; omitted keeps the stored one, "
        "null removes it",
        json_schema_extra={"writeOnly": True},
    )

    @field_validator("heartbeat_url")
    @classmethod
    def _heartbeat(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(_no_nul(value))

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        normalize_expression(_no_nul(value))
        return " ".join(value.split())

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        parse_zone(value)
        return value


class SchedulePublic(BaseModel):
    cron: str
    timezone: str
    enabled: bool
    next_run_at: OptionalTimestamp = Field(description="The next slot (null while disabled)")
    last_run_at: OptionalTimestamp = Field(
        description="When the schedule last started a backup (a slot's, or a retry)"
    )
    last_backup_id: int | None = Field(description="The backup it then started")
    skipped_runs: int = Field(
        description="Slots not run because the database already had a backup pending or "
        "running, or because the account's limits refused one"
    )
    next_retry_at: OptionalTimestamp = Field(
        default=None,
        description="When the failed scheduled backup is tried again, if it will be",
    )
    heartbeat_url: str | None = Field(
        default=None,
        description="The monitor pinged after each scheduled backup, masked (scheme and "
        "host only), or null",
    )


# --------------------------------------------------------------------------- restores


class Restore(SQLModel, table=True):
    __tablename__ = "restores"
    __table_args__ = NEVER_REUSE_IDS

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
    # The backup of the target taken first, when the restore asked for one.
    safety_backup_id: int | None = SQLField(
        default=None,
        sa_column=Column(
            Integer,
            ForeignKey(
                "backups.id", ondelete="SET NULL", name="fk_restores_safety_backup_id_backups"
            ),
            nullable=True,
            index=True,
        ),
    )


class RestoreCreate(StrictBody):
    database_id: IdValue = Field(ge=1, le=MAX_ID, description="Target database of the restore")
    confirm: str | None = Field(
        default=None,
        max_length=128,
        description="The target's db_name, required when the target is the backup's own "
        "source (the restore overwrites it)",
    )
    backup_target_first: bool = Field(
        default=False,
        description="Back the target up first; the restore waits for that backup and "
        "fails, changing nothing, if it fails",
    )
    identity: str | None = Field(
        default=None,
        max_length=4096,
        repr=False,
        description="The age secret key (`AGE-SECRET-KEY-1...`) of a backup encrypted to "
        "recipients; used in memory for this restore only, never stored",
        json_schema_extra={"pattern": _IDENTITY},
    )

    @field_validator("identity")
    @classmethod
    def _identity(cls, value: str | None) -> str | None:
        if value is not None:
            # ValueError: a French message, never the input; the shape first, as documented.
            parse_identity("" if not re.fullmatch(_IDENTITY, value) else value)
        return value

    model_config = ConfigDict(json_schema_extra=_without_null)


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
    safety_backup_id: int | None = Field(
        description="The backup of the target taken before the restore, when asked for"
    )
    phase: JobPhase | None = Field(default=None, description=PHASE_DESCRIPTION)
    progress: JobProgressPublic | None = Field(default=None, description=PROGRESS_DESCRIPTION)


# --------------------------------------------------------------------------- drills


class Drill(SQLModel, table=True):
    """A restore drill: a backup restored into a scratch database, then each table's rows
    counted and compared with the counts at dump time."""

    __tablename__ = "drills"
    __table_args__ = (Index("ix_drills_user_id_id", "user_id", "id"), NEVER_REUSE_IDS)

    id: int | None = SQLField(default=None, primary_key=True)
    backup_id: int | None = SQLField(
        default=None,
        sa_column=Column(
            Integer,
            ForeignKey("backups.id", ondelete="SET NULL", name="fk_drills_backup_id"),
            nullable=True,
            index=True,
        ),
    )
    source_database_id: int | None = SQLField(
        default=None,
        sa_column=Column(
            Integer,
            ForeignKey("databases.id", ondelete="SET NULL", name="fk_drills_source_database_id"),
            nullable=True,
            index=True,
        ),
    )
    target_database_id: int | None = SQLField(
        default=None,
        sa_column=Column(
            Integer,
            ForeignKey("databases.id", ondelete="SET NULL", name="fk_drills_target_database_id"),
            nullable=True,
            index=True,
        ),
    )
    status: str = SQLField(
        default=JobStatus.PENDING.value, sa_column=Column(String(16), nullable=False, index=True)
    )
    error_msg: str | None = SQLField(default=None, sa_column=Column(Text, nullable=True))
    # [{"name", "expected_rows", "restored_rows"}] as JSON text.
    tables: str | None = SQLField(default=None, sa_column=Column(Text, nullable=True))
    user_id: int = SQLField(
        sa_column=Column(Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    started_at: datetime | None = _tz_column(nullable=True)
    finished_at: datetime | None = _tz_column(nullable=True)
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))


class DrillSchedule(SQLModel, table=True):
    """When a database's newest backup is drilled, and into which scratch database. Its
    slots are claimed as a backup schedule's are (see ``scheduler``)."""

    __tablename__ = "drill_schedules"
    __table_args__ = NEVER_REUSE_IDS

    id: int | None = SQLField(default=None, primary_key=True)
    database_id: int = SQLField(
        sa_column=Column(
            Integer,
            ForeignKey("databases.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        )
    )
    target_database_id: int = SQLField(
        sa_column=Column(
            Integer, ForeignKey("databases.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    cron: str = SQLField(sa_column=Column(String(128), nullable=False))
    timezone: str = SQLField(sa_column=Column(String(64), nullable=False))
    enabled: bool = SQLField(default=True, sa_column=Column(Boolean, nullable=False))
    next_run_at: datetime | None = _tz_column(nullable=True)
    last_run_at: datetime | None = _tz_column(nullable=True)
    last_drill_id: int | None = SQLField(default=None, sa_column=Column(Integer, nullable=True))
    skipped_runs: int = SQLField(default=0, sa_column=Column(Integer, nullable=False, default=0))
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))


class DrillScheduleUpdate(ScheduleUpdate):
    target_database_id: IdValue = Field(
        ge=1,
        le=MAX_ID,
        description="The caller's scratch database (`scratch: true`) the drills restore into",
    )


class DrillSchedulePublic(BaseModel):
    target_database_id: int
    cron: str
    timezone: str
    enabled: bool
    next_run_at: OptionalTimestamp = Field(description="The next slot (null while disabled)")
    last_run_at: OptionalTimestamp
    last_drill_id: int | None
    skipped_runs: int = Field(
        description="Slots not run: no completed backup, the target or the source busy, "
        "or the account's limits"
    )


class DrillScheduleEnvelope(BaseModel):
    message: str
    drill_schedule: DrillSchedulePublic


class DrillScheduleItem(BaseModel):
    drill_schedule: DrillSchedulePublic


class DrillCreate(StrictBody):
    # The validator outside the union: inside, it would hide the bounds from the schema.
    target_database_id: Annotated[
        Annotated[int, Ge(1), Le(MAX_ID)] | None, BeforeValidator(_id_not_bool)
    ] = Field(
        default=None,
        description="The scratch database to restore into; may be left out when the "
        "backup's database has a drill set",
    )

    model_config = ConfigDict(json_schema_extra=_without_null)


class DrillTable(BaseModel):
    name: str
    expected_rows: int | None = Field(description="Rows at dump time (null: not in the dump)")
    restored_rows: int | None = Field(description="Rows after the restore (null: missing)")


class DrillPublic(BaseModel):
    id: int
    backup_id: int | None
    source_database_id: int | None
    target_database_id: int | None
    user_id: int
    status: Literal["pending", "passed", "failed"]
    error_msg: str | None
    tables: list[DrillTable]
    created_at: Timestamp
    started_at: OptionalTimestamp
    finished_at: OptionalTimestamp
    duration_seconds: float | None


class DrillEnvelope(BaseModel):
    message: str
    drill: DrillPublic


class DrillItem(BaseModel):
    drill: DrillPublic


class DrillList(BaseModel):
    drills: list[DrillPublic]


def duration_seconds(started: datetime | None, finished: datetime | None) -> float | None:
    if started is None or finished is None:
        return None
    return round((as_utc(finished) - as_utc(started)).total_seconds(), 3)


# --------------------------------------------------------------------------- envelopes


# --------------------------------------------------------------------------- audit


class AuditEvent(SQLModel, table=True):
    """One entry of the audit trail: who (``user_id``, no foreign key: the entries of a
    deleted account stay), from where, did what to which record, and how it ended.
    ``details`` is a small JSON object that never holds a secret."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_user_id_id", "user_id", "id"),
        Index("ix_audit_events_action_id", "action", "id"),
        NEVER_REUSE_IDS,
    )

    id: int | None = SQLField(default=None, primary_key=True)
    time: datetime = SQLField(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    user_id: int | None = SQLField(default=None, sa_column=Column(Integer, nullable=True))
    client: str | None = SQLField(default=None, sa_column=Column(String(64), nullable=True))
    request_id: str | None = SQLField(default=None, sa_column=Column(String(128), nullable=True))
    action: str = SQLField(sa_column=Column(String(64), nullable=False))
    target_type: str | None = SQLField(default=None, sa_column=Column(String(32), nullable=True))
    target_id: int | None = SQLField(default=None, sa_column=Column(Integer, nullable=True))
    outcome: str = SQLField(sa_column=Column(String(16), nullable=False))
    details: dict[str, Any] | None = SQLField(default=None, sa_column=Column(JSON, nullable=True))


ISO_8601_EXPECTED = "date ISO 8601 attendue (2026-11-28T14:30:00Z)"


def _iso_8601(value: object) -> object:
    # Pydantic alone would also take a number as seconds since 1970: a bound written
    # that way is far more likely a mistake than a wish.
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(ISO_8601_EXPECTED) from None
    if isinstance(value, datetime):
        return value
    raise ValueError(ISO_8601_EXPECTED)


#: A time given as ISO 8601 text only (query bounds: ``since``, ``until``).
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_8601)]


class AuditEventPublic(BaseModel):
    id: int
    time: Timestamp
    user_id: int | None = Field(
        description="The account that acted (it may have been deleted since); null: "
        "unknown (a login to an account that does not exist)"
    )
    client: str | None = Field(description="The client's address")
    request_id: str | None = Field(description="The request's `X-Request-ID`")
    action: str = Field(description="What was done (`login`, `backup_delete`...)")
    target_type: str | None = Field(description="The kind of record acted on")
    target_id: int | None = Field(description="The id of the record acted on")
    outcome: str = Field(description="`success`, `failure` or `throttled`")
    details: dict[str, Any] = Field(description="More about the action (never a secret)")


class AuditList(BaseModel):
    audit: list[AuditEventPublic]


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
    expires_in: int = Field(description="Lifetime of the token, in seconds")
    user: UserPublic


class DatabaseEnvelope(BaseModel):
    message: str
    database: DatabasePublic
    warning: str | None = Field(
        default=None,
        description="Present when a backup would fail as things stand: the server could "
        "not be reached (the reason's category follows; the database is registered all the "
        "same), or no installed client can back it up",
    )


class DumpClientPublic(BaseModel):
    path: str = Field(description="The dump tool a backup would run")
    version: str = Field(description="Its version, as it reports it")


class ConnectionTestResult(BaseModel):
    ok: bool
    server_version: str | None = Field(
        default=None,
        description="PostgreSQL: `major.minor`; MySQL/MariaDB: as `VERSION()` reports it",
    )
    size_bytes: int | None = Field(
        default=None,
        description="The database's size: `pg_database_size`, or the data and indexes of "
        "its tables in `information_schema` (estimates for InnoDB)",
    )
    client: DumpClientPublic | None = None
    error: str | None = Field(
        default=None,
        description="Why a backup would fail (when `ok` is false): the failure's category, "
        "with the tool's own message for an admin",
    )


class DatabaseItem(BaseModel):
    database: DatabasePublic


class DatabaseList(BaseModel):
    databases: list[DatabasePublic]


class ApiTokenCreated(BaseModel):
    message: str
    token: ApiTokenPublic
    secret: str = Field(
        description="The token to send as `Authorization: Bearer <secret>`: shown this once, "
        "only its hash is kept"
    )


class ApiTokenItem(BaseModel):
    token: ApiTokenPublic


class ApiTokenList(BaseModel):
    tokens: list[ApiTokenPublic]


class BackupEnvelope(BaseModel):
    message: str
    backup: BackupPublic


class BackupItem(BaseModel):
    backup: BackupPublic


class BackupList(BaseModel):
    backups: list[BackupPublic]


class ScheduleEnvelope(BaseModel):
    message: str
    schedule: SchedulePublic


class ScheduleItem(BaseModel):
    schedule: SchedulePublic


class VerificationPublic(BaseModel):
    valid: bool
    checksum_expected: str | None
    checksum_actual: str | None
    error: str | None
    contents_checked: bool = Field(
        default=True,
        description="Whether the ZIP and its SQL were checked; false for a backup "
        "encrypted to recipients, whose file's SHA-256 and age structure alone can be "
        "checked without the identity",
    )


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


class HealthStatus(BaseModel):
    """What anyone may know: whether the service answers."""

    status: str = Field(
        description="`ok`, or `degraded` (503) when the metadata database is unreachable"
    )


class ClientStatus(BaseModel):
    tool: str
    path: str
    version: str | None = Field(description="null: does not answer as a PostgreSQL client")


class SchedulerHealth(BaseModel):
    status: str = Field(
        description="`ok`, or `late` when its loop has not made a pass for longer than three "
        "polling periods (at least two minutes)"
    )
    last_tick: OptionalTimestamp = Field(description="When its latest pass began")


class HealthResponse(BaseModel):
    """The administrators' view. Every value is an English word (`ok`, `degraded`,
    `unavailable`, `late`) or a number: the same vocabulary as the public answer."""

    status: str = Field(description="`ok`, or `degraded` when something is missing")
    database: str = Field(description="`ok`, or `unavailable`")
    tools: dict[str, ToolStatus]
    pg_clients: list[ClientStatus] = Field(
        default_factory=list,
        description="PostgreSQL clients found (pg_dump, psql); each job takes the one that fits",
    )
    storage: dict[str, int | str] = Field(
        description="`status` (`ok` or `unavailable`), `free_bytes`, `total_bytes` of the "
        "backup root's filesystem"
    )
    jobs: dict[str, int] = Field(description="The job queue: `running` and `queued` jobs")
    scheduler: SchedulerHealth


# --------------------------------------------------------------------------- notifications


class NotificationType(StrEnum):
    #: Standard Webhooks: a signed JSON POST to the channel's URL.
    WEBHOOK = "webhook"
    #: Any service the apprise library reaches through one URL (Slack, ntfy, e-mail...).
    APPRISE = "apprise"


class NotificationScope(StrEnum):
    #: The owner's events only.
    OWN = "own"
    #: Every account's events (admins only).
    ALL = "all"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt
    DELIVERED = "delivered"  # a 2xx answer (or apprise's success)
    FAILED = "failed"  # every attempt of the schedule failed


class NotificationChannel(SQLModel, table=True):
    """Where one user's (or, scope ``all``, every user's) events are sent."""

    __tablename__ = "notification_channels"
    __table_args__ = NEVER_REUSE_IDS

    id: int | None = SQLField(default=None, primary_key=True)
    user_id: int = SQLField(
        sa_column=Column(
            Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    name: str = SQLField(sa_column=Column(String(100), nullable=False))
    type: str = SQLField(sa_column=Column(String(16), nullable=False))
    # Fernet token of the URL (it carries tokens), and the masked form shown back.
    url_encrypted: str = SQLField(sa_column=Column(Text, nullable=False))
    url_masked: str = SQLField(sa_column=Column(String(300), nullable=False))
    # Fernet token of the webhook's signing secret (``whsec_...``); null for apprise.
    secret_encrypted: str | None = SQLField(default=None, sa_column=Column(Text, nullable=True))
    # The event types it hears, a JSON list.
    events: str = SQLField(sa_column=Column(Text, nullable=False))
    scope: str = SQLField(sa_column=Column(String(8), nullable=False))
    enabled: bool = SQLField(default=True, sa_column=Column(Boolean, nullable=False))
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))


class NotificationDelivery(SQLModel, table=True):
    """One event to deliver to one channel: the exact body every attempt sends, and
    where its retries stand (kept here so that a restart resumes them)."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        Index("ix_notification_deliveries_due", "status", "next_attempt_at"),
        NEVER_REUSE_IDS,
    )

    id: int | None = SQLField(default=None, primary_key=True)
    channel_id: int = SQLField(
        sa_column=Column(
            Integer,
            ForeignKey("notification_channels.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    # Standard Webhooks' ``webhook-id``: the event's id, the same on every attempt.
    event_id: str = SQLField(sa_column=Column(String(64), nullable=False))
    event_type: str = SQLField(sa_column=Column(String(64), nullable=False))
    body: str = SQLField(sa_column=Column(Text, nullable=False))
    status: str = SQLField(
        default=DeliveryStatus.PENDING.value, sa_column=Column(String(16), nullable=False)
    )
    attempts: int = SQLField(default=0, sa_column=Column(Integer, nullable=False, default=0))
    next_attempt_at: datetime | None = _tz_column(nullable=True)
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = SQLField(default_factory=utcnow, sa_type=DateTime(timezone=True))


class NotificationAttempt(SQLModel, table=True):
    """One attempt at a delivery, and what the receiver answered."""

    __tablename__ = "notification_attempts"
    __table_args__ = NEVER_REUSE_IDS

    id: int | None = SQLField(default=None, primary_key=True)
    delivery_id: int = SQLField(
        sa_column=Column(
            Integer,
            ForeignKey("notification_deliveries.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    channel_id: int = SQLField(
        sa_column=Column(
            Integer,
            ForeignKey("notification_channels.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    attempt: int = SQLField(sa_column=Column(Integer, nullable=False))
    status_code: int | None = SQLField(default=None, sa_column=Column(Integer, nullable=True))
    error: str | None = SQLField(default=None, sa_column=Column(Text, nullable=True))
    at: datetime = SQLField(sa_type=DateTime(timezone=True))


def _check_events(value: list[str]) -> list[str]:
    # Imported here: the events module imports this one.
    from backup_api.events import EVENT_TYPES

    if not value:
        raise ValueError("au moins un type d'événement attendu")
    for item in value:
        if item not in EVENT_TYPES:
            raise ValueError(
                f"type d'événement inconnu: {item[:64]} (attendus: {', '.join(EVENT_TYPES)})"
            )
    if len(set(value)) != len(value):
        raise ValueError("types d'événement en double")
    return value


_EVENTS_DESCRIPTION = (
    "Event types the channel hears: `backup.completed`, `backup.failed`, `backup.overdue`, "
    "`restore.completed`, `restore.failed`, `schedule.skipped`, `retention.deleted`, "
    "`drill.passed`, `drill.failed`"
)
ChannelName = Annotated[
    str,
    Field(min_length=1, max_length=100, json_schema_extra={"pattern": _NOT_BLANK}),
    AfterValidator(_check_name),
]
ChannelUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_CHANNEL_URL,
        description="Webhook: the http(s) URL receiving the POSTs. apprise: an apprise URL "
        "(`tgram://...`, `ntfys://...`, `json://...`). Write-only: encrypted at rest, "
        "shown masked",
        json_schema_extra={"writeOnly": True},
    ),
    AfterValidator(_no_nul),
]


def _events_schema(schema: dict[str, Any]) -> None:
    # Built when the document is (the events module imports this one): exactly what
    # _check_events accepts.
    from backup_api.events import EVENT_TYPES

    schema.update(minItems=1, uniqueItems=True)
    schema["items"] = {"type": "string", "enum": list(EVENT_TYPES)}


ChannelEvents = Annotated[
    list[str],
    Field(max_length=32, description=_EVENTS_DESCRIPTION, json_schema_extra=_events_schema),
    AfterValidator(_check_events),
]


class NotificationCreate(StrictBody):
    name: ChannelName
    type: NotificationType = Field(description="`webhook` or `apprise`")
    url: ChannelUrl
    events: ChannelEvents
    scope: NotificationScope = Field(
        default=NotificationScope.OWN,
        description="`own`: the owner's events; `all`: every account's (admins only)",
    )
    enabled: bool = Field(default=True, strict=True)


class NotificationUpdate(StrictBody):
    """A PUT may omit fields, which keeps them; ``null`` is refused."""

    model_config = ConfigDict(json_schema_extra=_without_null)

    name: ChannelName | None = None
    url: ChannelUrl | None = None
    events: ChannelEvents | None = None
    scope: NotificationScope | None = None
    enabled: bool | None = Field(default=None, strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("null refusé: omettez le champ pour garder sa valeur")
        return value


class NotificationPublic(BaseModel):
    id: int
    name: str
    type: NotificationType
    url: str = Field(description="Masked: scheme and host only (the rest may carry tokens)")
    events: list[str]
    scope: NotificationScope
    enabled: bool
    user_id: int
    created_at: Timestamp
    updated_at: Timestamp


class NotificationEnvelope(BaseModel):
    message: str
    notification: NotificationPublic


class NotificationCreated(NotificationEnvelope):
    secret: str | None = Field(
        description="Webhooks: the signing secret (`whsec_` + base64 of 32 bytes), returned "
        "this once only; null for apprise"
    )


class NotificationItem(BaseModel):
    notification: NotificationPublic


class NotificationList(BaseModel):
    notifications: list[NotificationPublic]


class NotificationTestResult(BaseModel):
    ok: bool
    status_code: int | None = Field(
        default=None, description="The receiver's HTTP status (webhooks)"
    )
    error: str | None = Field(default=None, description="Why it failed (when `ok` is false)")


class DeliveryAttemptPublic(BaseModel):
    id: int
    delivery_id: int
    event_type: str
    webhook_id: str = Field(description="The event's id: the same on every attempt")
    attempt: int = Field(description="1 for the first attempt, up to 8")
    status_code: int | None
    error: str | None
    at: Timestamp
    delivery_status: DeliveryStatus = Field(
        description="Where the delivery stands now: `pending` (another attempt is planned), "
        "`delivered` or `failed`"
    )
    next_attempt_at: OptionalTimestamp = Field(description="The delivery's next attempt")


class DeliveryList(BaseModel):
    deliveries: list[DeliveryAttemptPublic]

"""Password hashing (Argon2 via pwdlib), JWTs (PyJWT, HS256 only) and encryption of the
registered databases' passwords (Fernet, i.e. AES-128-CBC + HMAC-SHA256)."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography.fernet import Fernet, InvalidToken
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from backup_api.config import Settings

logger = logging.getLogger("backup_api.security")

JWT_ALGORITHM = "HS256"

_password_hash = PasswordHash((Argon2Hasher(),))
# Verified against when the email is unknown, so both failures cost the same time.
_DUMMY_HASH = _password_hash.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _password_hash.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    if password_hash is None:
        _password_hash.verify(password, _DUMMY_HASH)
        return False
    return _password_hash.verify(password, password_hash)


class InvalidTokenError(Exception):
    pass


def new_api_token(prefix: str) -> tuple[str, str]:
    """A personal API token and the hash to store: 256 random bits after ``prefix``."""
    secret = prefix + secrets.token_urlsafe(32)
    return secret, hash_api_token(secret)


def hash_api_token(secret: str) -> str:
    """SHA-256, hexadecimal. A slow password hash is for guessable secrets; a 256-bit random
    token cannot be guessed from its hash, and a fast one lets every request look the token
    up by an index instead of verifying a costly hash per candidate."""
    return hashlib.sha256(secret.encode()).hexdigest()


# The account's token key: an id alone could name another account later (ids of deleted
# accounts on a database that reused them), and the key also ends older tokens when the
# account's role or password changes.
KEY_CLAIM = "key"


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    issued_at: datetime
    expires_at: float  # POSIX timestamp
    token_key: str = field(repr=False)


def create_access_token(user_id: int, secret: str, expire_minutes: int, *, token_key: str) -> str:
    now = datetime.now(UTC)
    payload = {
        "sub": str(user_id),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=expire_minutes)).timestamp()),
        "typ": "access",
        KEY_CLAIM: token_key,
    }
    return jwt.encode(payload, secret, algorithm=JWT_ALGORITHM)


def decode_access_token(token: str, secret: str) -> TokenClaims:
    try:
        # The algorithm list is fixed here: the token's own header never chooses it.
        payload = jwt.decode(
            token,
            secret,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "iat", "sub", KEY_CLAIM]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidTokenError(str(exc)) from None
    if payload.get("typ") != "access":
        raise InvalidTokenError("wrong token type")
    try:
        user_id = int(payload["sub"])
    except (TypeError, ValueError):
        raise InvalidTokenError("bad subject") from None
    token_key = payload[KEY_CLAIM]
    if not isinstance(token_key, str) or not token_key:
        raise InvalidTokenError("bad key")
    return TokenClaims(
        user_id=user_id,
        issued_at=datetime.fromtimestamp(payload["iat"], UTC),
        expires_at=float(payload["exp"]),
        token_key=token_key,
    )


class VerifiedTokens:
    """Claims of the tokens already verified, so each is decoded once, not on every request.

    Decoding (base64, JSON, HMAC, claim checks) was the largest single cost of an
    authenticated request. A token string that verified once verifies again: the key is
    fixed for the process; only its expiry moves, and that is checked on every hit.
    """

    def __init__(self, secret: str, size: int = 10_000) -> None:
        self._secret = secret
        self._size = size
        self._claims: OrderedDict[str, TokenClaims] = OrderedDict()

    def decode(self, token: str) -> TokenClaims:
        claims = self._claims.get(token)
        if claims is None:
            claims = decode_access_token(token, self._secret)
            self._claims[token] = claims
            if len(self._claims) > self._size:
                self._claims.popitem(last=False)
        if time.time() >= claims.expires_at:
            self._claims.pop(token, None)
            raise InvalidTokenError("expired")
        return claims


def _read_or_create_key(path: Path, generate: str) -> str:
    """Return the key stored at ``path``, creating it (mode 0600) the first time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        logger.info("key file in use: %s", path)
        return path.read_text(encoding="ascii").strip()
    logger.info("key file generated: %s", path)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(generate + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return generate


@dataclass(frozen=True, repr=False)
class Keys:
    jwt_secret: str
    fernet: Fernet

    def __repr__(self) -> str:
        return "Keys(***)"


def load_keys(settings: Settings) -> Keys:
    """Keys from the settings, or generated once into 0600 files in the secrets directory."""
    secrets_dir = settings.resolved_secrets_dir
    if settings.jwt_secret is not None:
        jwt_secret = settings.jwt_secret.get_secret_value()
    else:
        jwt_secret = _read_or_create_key(secrets_dir / "jwt.key", secrets.token_urlsafe(48))
    if len(jwt_secret) < 32:
        raise ValueError("BACKUP_API_JWT_SECRET must be at least 32 characters long")
    if settings.encryption_key is not None:
        encryption_key = settings.encryption_key.get_secret_value()
    else:
        key_file = secrets_dir / "encryption.key"
        encryption_key = _read_or_create_key(key_file, Fernet.generate_key().decode("ascii"))
        # The one file whose loss cannot be repaired: say so where the operator looks.
        logger.warning(
            "back up %s: without it the stored database passwords (and storage secrets) "
            "cannot be decrypted, and every registered database must be entered again",
            key_file,
        )
    return Keys(jwt_secret=jwt_secret, fernet=Fernet(encryption_key.encode("ascii")))


class CredentialError(Exception):
    pass


def encrypt_secret(keys: Keys, plaintext: str) -> str:
    return keys.fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt_secret(keys: Keys, token: str) -> str:
    try:
        return keys.fernet.decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, ValueError):
        raise CredentialError(
            "impossible de déchiffrer le mot de passe enregistré (clé de chiffrement changée ?)"
        ) from None

"""The age file format (C2SP ``age-encryption.org/v1``): a streaming writer and a seekable reader.

A file is a text header (one stanza per recipient wrapping a random 16-byte file key, or a
single scrypt stanza for a passphrase, then an HMAC of the header), a 16-byte nonce, and
the payload: ChaCha20-Poly1305 over 64 KiB chunks (the STREAM construction: the nonce of
chunk ``i`` is ``i`` on 11 bytes then a flag byte, 1 for the last chunk only). The owner of
a backup opens it with the reference tool alone: ``age -d -i key.txt f.zip.age > f.zip``.

Why not ``pyrage`` (the binding of the Rust implementation): its streaming calls pull from
a reader and decrypt a whole file into a writer. The archive process needs the opposite
shapes: a *sink* the ZIP writer pushes into, in the same pass as compression and hashing,
and a *seekable* plaintext file for ``zipfile`` (which reads the central directory at the
end first). Its passphrase mode takes whole buffers only. The format is small enough to
build from the primitives of ``cryptography`` (X25519, ChaCha20-Poly1305, scrypt); HKDF and
HMAC-SHA256 come from the standard library, which keeps the archive process's imports few.

Both sides hold one chunk at a time, whatever the file's size. The reader authenticates
every chunk it returns and, on opening, the final one: a file cut at a chunk boundary or
inside one is refused before any plaintext is used. Without the key (a backup encrypted
to its owner's recipients only) ``inspect`` checks what can be checked. Errors
(``AgeError``) are French, shown to users, and never contain key material.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, BinaryIO, Final, NamedTuple, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "CHUNK",
    "MAX_SCRYPT_LOG_N",
    "AgeDecryptingReader",
    "AgeEncryptingSink",
    "AgeError",
    "AgeLayout",
    "generate_identity",
    "inspect",
    "parse_identity",
    "parse_recipient",
    "recipient_of",
]

#: Plaintext bytes per payload chunk (fixed by the format).
CHUNK: Final = 64 * 1024
_TAG: Final = 16
_SEALED: Final = CHUNK + _TAG
_NONCE: Final = 16
_FILE_KEY: Final = 16
_VERSION: Final = b"age-encryption.org/v1"
_X25519_LABEL: Final = b"age-encryption.org/v1/X25519"
_SCRYPT_LABEL: Final = b"age-encryption.org/v1/scrypt"
_ZERO_NONCE: Final = bytes(12)
_COLUMNS: Final = 64  # base64 characters per stanza body line
#: Largest scrypt work factor (log2 N) accepted. scrypt needs 128 * r * N bytes: 2**20
#: with r = 8 is 1 GiB, already much for a process that runs next to database servers;
#: ``age -p`` writes 18. Beyond this a file is refused rather than exhausting memory.
MAX_SCRYPT_LOG_N: Final = 20
#: A header is a few hundred bytes per recipient; a longer one is not a file of ours.
_MAX_HEADER: Final = 256 * 1024

_BECH32: Final = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_RECIPIENT_HRP: Final = "age"
_IDENTITY_HRP: Final = "age-secret-key-"
_ARG: Final = re.compile(rb"[\x21-\x7e]+")
_LOG_N: Final = re.compile(rb"[1-9][0-9]?")


class AgeError(Exception):
    """An age file that cannot be opened: wrong key, damaged or not age. French message."""

    WRONG_IDENTITY: Final = "identité incorrecte"
    WRONG_PASSPHRASE: Final = "phrase secrète incorrecte"  # noqa: S105 (a message)
    TRUNCATED: Final = "fichier chiffré tronqué"
    ALTERED: Final = "fichier chiffré altéré"
    # A last chunk that fails authentication and is shorter than a full one: the file was
    # cut inside a chunk or that chunk was modified; the format cannot tell which.
    TRUNCATED_OR_ALTERED: Final = "fichier chiffré tronqué ou altéré"
    INVALID: Final = "format age invalide"
    SCRYPT_TOO_HARD: Final = "format age invalide : facteur de travail scrypt trop élevé"


# ---------------------------------------------------------------------------- primitives
def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 (RFC 5869) for one 32-byte block, the only length age derives."""
    prk = hmac.digest(salt or bytes(32), ikm, "sha256")
    return hmac.digest(prk, info + b"\x01", "sha256")


def _scrypt_key(passphrase: str, salt: bytes, log_n: int) -> bytes:
    # Imported here: only passphrase files need it, and the archive process pays for each import.
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    kdf = Scrypt(salt=_SCRYPT_LABEL + salt, length=32, n=1 << log_n, r=8, p=1)
    return kdf.derive(passphrase.encode("utf-8"))


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    """Unpadded standard base64, canonical only (age rejects any other spelling)."""
    if len(text) % 4 == 1:
        raise AgeError(AgeError.INVALID)
    try:
        data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise AgeError(AgeError.INVALID) from None
    if _b64(data) != text:  # non-zero padding bits, or '=' inside
        raise AgeError(AgeError.INVALID)
    return data


def _stream_nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


# ---------------------------------------------------------------------------- keys (Bech32)
def _polymod(values: Iterable[int]) -> int:
    generator = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for bit in range(5):
            if (top >> bit) & 1:
                check ^= generator[bit]
    return check


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _bech32_encode(hrp: str, data: bytes) -> str:
    words, acc, bits = [], 0, 0
    for byte in data:
        acc, bits = acc << 8 | byte, bits + 8
        while bits >= 5:
            bits -= 5
            words.append(acc >> bits & 31)
    if bits:
        words.append(acc << (5 - bits) & 31)
    check = _polymod([*_hrp_expand(hrp), *words, 0, 0, 0, 0, 0, 0]) ^ 1
    words += [check >> 5 * (5 - i) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32[w] for w in words)


def _bech32_decode(text: str, hrp: str, size: int) -> bytes | None:
    """The ``size`` bytes of a Bech32 (not Bech32m) string of the given ``hrp``, or None."""
    if not text.isascii() or (text.lower() != text and text.upper() != text):
        return None
    text = text.lower()
    prefix, sep, rest = text.rpartition("1")
    if not sep or prefix != hrp or len(rest) < 6 or any(c not in _BECH32 for c in rest):
        return None
    words = [_BECH32.index(c) for c in rest]
    if _polymod([*_hrp_expand(hrp), *words]) != 1:
        return None
    acc, bits, out = 0, 0, bytearray()
    for word in words[:-6]:
        acc, bits = acc << 5 | word, bits + 5
        if bits >= 8:
            bits -= 8
            out.append(acc >> bits & 0xFF)
    if bits >= 5 or acc & ((1 << bits) - 1) or len(out) != size:
        return None
    return bytes(out)


def parse_recipient(recipient: str) -> bytes:
    """The X25519 public key (32 bytes) of an ``age1...`` recipient; ValueError if invalid."""
    key = _bech32_decode(recipient.strip(), _RECIPIENT_HRP, 32)
    if key is None:
        raise ValueError("destinataire age invalide (attendu : une clé publique age1…)")
    return key


def parse_identity(identity: str) -> bytes:
    """The X25519 secret key (32 bytes) of an ``AGE-SECRET-KEY-1...`` identity.

    Also accepts the contents of a key file from ``age-keygen`` (``#`` comment lines and
    one key). ValueError if invalid; the message never repeats the input.
    """
    lines = [ln.strip() for ln in identity.strip().splitlines()]
    keys = [ln for ln in lines if ln and not ln.startswith("#")]
    key = _bech32_decode(keys[0], _IDENTITY_HRP, 32) if len(keys) == 1 else None
    if key is None:
        raise ValueError("identité age invalide (attendu : une clé secrète AGE-SECRET-KEY-1…)")
    return key


def _public_of(secret: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()


def recipient_of(identity: str) -> str:
    """The ``age1...`` recipient that encrypts to ``identity``."""
    return _bech32_encode(_RECIPIENT_HRP, _public_of(parse_identity(identity)))


def generate_identity() -> tuple[str, str]:
    """A new ``(identity, recipient)`` pair, as ``age-keygen`` makes."""
    secret = X25519PrivateKey.generate().private_bytes_raw()
    identity = _bech32_encode(_IDENTITY_HRP, secret).upper()
    return identity, _bech32_encode(_RECIPIENT_HRP, _public_of(secret))


# ---------------------------------------------------------------------------- header
def _stanza(args: list[bytes], body: bytes) -> bytes:
    encoded = _b64(body)
    lines = [encoded[i : i + _COLUMNS] for i in range(0, len(encoded), _COLUMNS)]
    if not lines or len(lines[-1]) == _COLUMNS:
        lines.append(b"")  # the last body line is always shorter than a full one
    return b"-> " + b" ".join(args) + b"\n" + b"\n".join(lines) + b"\n"


def _x25519_stanza(recipient: bytes, file_key: bytes) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
    wrap_key = _hkdf(shared, share + recipient, _X25519_LABEL)
    body = ChaCha20Poly1305(wrap_key).encrypt(_ZERO_NONCE, file_key, None)
    return _stanza([b"X25519", _b64(share)], body)


def _scrypt_stanza(passphrase: str, log_n: int, file_key: bytes) -> bytes:
    salt = os.urandom(16)
    wrap_key = _scrypt_key(passphrase, salt, log_n)
    body = ChaCha20Poly1305(wrap_key).encrypt(_ZERO_NONCE, file_key, None)
    return _stanza([b"scrypt", _b64(salt), str(log_n).encode()], body)


def _header_mac(file_key: bytes, header: bytes) -> bytes:
    return hmac.digest(_hkdf(file_key, b"", b"header"), header, "sha256")


class _Header:
    """A parsed header: its stanzas, the bytes its MAC covers, the MAC, its length."""

    def __init__(self, raw: bytes) -> None:
        lines = raw.split(b"\n")
        if lines[0] != _VERSION:
            raise AgeError(AgeError.INVALID)
        self.stanzas: list[tuple[list[bytes], bytes]] = []
        index = 1
        while lines[index].startswith(b"-> "):
            args = lines[index][3:].split(b" ")
            if not all(_ARG.fullmatch(arg) for arg in args):
                raise AgeError(AgeError.INVALID)
            body = b""
            while True:
                index += 1
                line = lines[index]  # the footer follows, so the list never runs out
                if len(line) > _COLUMNS or line.startswith(b"-"):
                    raise AgeError(AgeError.INVALID)
                body += line
                if len(line) < _COLUMNS:
                    break
            self.stanzas.append((args, _unb64(body)))
            index += 1
        footer = lines[index]
        if not footer.startswith(b"--- ") or index != len(lines) - 2 or lines[-1]:
            raise AgeError(AgeError.INVALID)
        self.mac = _unb64(footer[4:])
        if len(self.mac) != 32 or not self.stanzas:
            raise AgeError(AgeError.INVALID)
        self.length = len(raw)
        self.covered = raw[: len(raw) - len(footer) - 1 + 3]  # up to and including "---"


def _read_header(source: BinaryIO) -> _Header:
    raw = b""
    while True:
        block = source.read(4096)
        if not block:
            raise AgeError(AgeError.TRUNCATED if raw.startswith(_VERSION) else AgeError.INVALID)
        raw += block
        if not raw.startswith(_VERSION[: len(raw)]):
            raise AgeError(AgeError.INVALID)
        footer = raw.find(b"\n---")
        end = raw.find(b"\n", footer + 1) if footer >= 0 else -1
        if end >= 0:
            return _Header(raw[: end + 1])
        if len(raw) > _MAX_HEADER:
            raise AgeError(AgeError.INVALID)


def _unwrap(wrap_key: bytes, body: bytes) -> bytes | None:
    try:
        return ChaCha20Poly1305(wrap_key).decrypt(_ZERO_NONCE, body, None)
    except InvalidTag:
        return None


def _file_key_x25519(header: _Header, secrets: list[bytes]) -> bytes:
    keys = [(X25519PrivateKey.from_private_bytes(s), _public_of(s)) for s in secrets]
    for args, body in header.stanzas:
        if args[0] == b"scrypt":
            break  # a passphrase file: no identity opens it
        if args[0] != b"X25519":
            continue  # another recipient type (a plugin's, say): not ours to open
        if len(args) != 2 or len(body) != 32:
            raise AgeError(AgeError.INVALID)
        share = _unb64(args[1])
        if len(share) != 32:
            raise AgeError(AgeError.INVALID)
        for private, public in keys:
            try:
                shared = private.exchange(X25519PublicKey.from_public_bytes(share))
            except ValueError:  # a low-order point: all-zero shared secret
                raise AgeError(AgeError.INVALID) from None
            file_key = _unwrap(_hkdf(shared, share + public, _X25519_LABEL), body)
            if file_key is not None:
                return file_key
    raise AgeError(AgeError.WRONG_IDENTITY)


def _file_key_scrypt(header: _Header, passphrase: str) -> bytes:
    args, body = header.stanzas[0]
    if args[0] != b"scrypt":
        raise AgeError(AgeError.WRONG_PASSPHRASE)  # encrypted to recipients instead
    if len(args) != 3 or len(body) != 32 or not _LOG_N.fullmatch(args[2]):
        raise AgeError(AgeError.INVALID)
    salt, log_n = _unb64(args[1]), int(args[2])
    if len(salt) != 16:
        raise AgeError(AgeError.INVALID)
    if log_n > MAX_SCRYPT_LOG_N:
        raise AgeError(AgeError.SCRYPT_TOO_HARD)
    file_key = _unwrap(_scrypt_key(passphrase, salt, log_n), body)
    if file_key is None:
        raise AgeError(AgeError.WRONG_PASSPHRASE)
    return file_key


# ---------------------------------------------------------------------------- writing
class _Sink(Protocol):
    """Where the encrypted bytes go, in order (``archive.ArchiveSink``'s contract: an
    ``int`` return smaller than the length is a short write, the rest is written again)."""

    def write(self, data: bytes, /) -> object: ...


class AgeEncryptingSink:
    """Encrypts what is written to it into ``sink``, as an age file, in constant memory.

    Exactly one of ``recipients`` (``age1...`` X25519 public keys) or ``passphrase``
    (scrypt, work factor ``2**scrypt_log_n``). The header is written at construction.
    ``write`` keeps at most one chunk (64 KiB) buffered: a full chunk waits for the next
    byte, since only ``close`` knows which chunk is the last. ``close`` writes the last
    chunk (an empty one for an empty input) and leaves ``sink`` open. Not thread-safe.
    """

    def __init__(
        self,
        sink: _Sink,
        *,
        recipients: list[str] | None = None,
        passphrase: str | None = None,
        scrypt_log_n: int = 18,
    ) -> None:
        if (recipients is None) == (passphrase is None):
            raise ValueError("exactly one of recipients or passphrase")
        file_key = os.urandom(_FILE_KEY)
        if recipients is not None:
            keys = [parse_recipient(r) for r in recipients]
            if not keys:
                raise ValueError("at least one recipient")
            stanzas = b"".join(_x25519_stanza(key, file_key) for key in keys)
        else:
            assert passphrase is not None
            if not passphrase:
                raise ValueError("empty passphrase")
            if not 1 <= scrypt_log_n <= MAX_SCRYPT_LOG_N:
                raise ValueError(f"scrypt_log_n must be within 1..{MAX_SCRYPT_LOG_N}")
            stanzas = _scrypt_stanza(passphrase, scrypt_log_n, file_key)
        header = _VERSION + b"\n" + stanzas + b"---"
        nonce = os.urandom(_NONCE)
        self._sink = sink
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._buffer = bytearray()  # never more than CHUNK bytes
        self._index = 0
        self._bytes_in = 0
        self._bytes_out = 0
        self._closed = False
        self._deliver(header + b" " + _b64(_header_mac(file_key, header)) + b"\n" + nonce)

    @property
    def bytes_in(self) -> int:
        """Plaintext bytes accepted so far."""
        return self._bytes_in

    @property
    def bytes_out(self) -> int:
        """Encrypted bytes written to the sink so far."""
        return self._bytes_out

    @property
    def buffered(self) -> int:
        """Plaintext bytes held, not yet encrypted (at most one chunk)."""
        return len(self._buffer)

    def write(self, data: bytes | bytearray | memoryview, /) -> None:
        if self._closed:
            raise ValueError("age sink already closed")
        view = memoryview(data).cast("B")
        self._bytes_in += len(view)
        done = 0
        if self._buffer:  # complete the held chunk first
            if len(self._buffer) == CHUNK and view:
                self._seal(self._buffer, last=False)
                self._buffer.clear()
            else:
                done = min(len(view), CHUNK - len(self._buffer))
                self._buffer += view[:done]
                if len(self._buffer) == CHUNK and done < len(view):
                    self._seal(self._buffer, last=False)
                    self._buffer.clear()
        # Whole chunks straight from the caller's buffer while more data follows them.
        while len(view) - done > CHUNK:
            self._seal(view[done : done + CHUNK], last=False)
            done += CHUNK
        self._buffer += view[done:]

    def close(self) -> None:
        """Write the last chunk; a second call does nothing. ``sink`` stays open."""
        if self._closed:
            return
        self._seal(self._buffer, last=True)
        self._buffer.clear()
        self._closed = True

    def __enter__(self) -> AgeEncryptingSink:
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is None:  # after a failure the file stays without its last chunk: invalid
            self.close()

    def _seal(self, plaintext: bytearray | memoryview, *, last: bool) -> None:
        nonce = _stream_nonce(self._index, last)
        self._index += 1
        self._deliver(self._aead.encrypt(nonce, plaintext, None))

    def _deliver(self, data: bytes) -> None:
        done = 0
        while done < len(data):
            written = self._sink.write(data[done:] if done else data)
            if not isinstance(written, int) or isinstance(written, bool):
                break
            if written <= 0:
                raise OSError(f"age sink accepted no bytes ({written!r})")
            done += written
        self._bytes_out += len(data)


# ---------------------------------------------------------------------------- reading
class AgeDecryptingReader(io.RawIOBase):
    """The plaintext of an age file, as a read-only seekable binary file.

    ``source`` must be seekable; it is read from its current position (where the file
    starts) and is not closed with the reader. Exactly one of ``identities``
    (``AGE-SECRET-KEY-1...``) or ``passphrase``. The constructor checks the key, the header
    MAC and the final chunk (so a truncated file fails here, with ``AgeError``); every
    later read authenticates the chunks it touches. One decrypted chunk is cached.
    """

    def __init__(
        self,
        source: BinaryIO,
        *,
        identities: list[str] | None = None,
        passphrase: str | None = None,
    ) -> None:
        super().__init__()
        if (identities is None) == (passphrase is None):
            raise ValueError("exactly one of identities or passphrase")
        secrets = [parse_identity(i) for i in identities] if identities is not None else []
        self._source = source
        start = source.tell()
        header = _read_header(source)
        if identities is not None:
            file_key = _file_key_x25519(header, secrets)
        else:
            assert passphrase is not None
            if any(args[0] == b"scrypt" for args, _ in header.stanzas[1:]):
                raise AgeError(AgeError.INVALID)  # scrypt must stand alone
            file_key = _file_key_scrypt(header, passphrase)
        if not hmac.compare_digest(_header_mac(file_key, header.covered), header.mac):
            raise AgeError(AgeError.ALTERED)
        source.seek(start + header.length)
        nonce = _read_exactly(source, _NONCE)
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._payload = start + header.length + _NONCE
        self._chunks, self._last_size = _chunking(source.seek(0, os.SEEK_END) - self._payload)
        self._size = self._chunks * CHUNK - _SEALED + self._last_size
        self._position = 0
        self._cached_index = -1
        self._cached = b""
        self._chunk(self._chunks - 1)  # the final chunk, authenticated as the last one

    @property
    def size(self) -> int:
        """Plaintext bytes in the file."""
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET, /) -> int:
        self._check_open()
        if whence == os.SEEK_SET:
            position = offset
        elif whence == os.SEEK_CUR:
            position = self._position + offset
        elif whence == os.SEEK_END:
            position = self._size + offset
        else:
            raise ValueError(f"invalid whence ({whence!r})")
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = position
        return position

    def read(self, size: int | None = -1, /) -> bytes:
        """Up to ``size`` bytes (all the rest if negative); fewer only at the end."""
        self._check_open()
        end = self._size if size is None or size < 0 else min(self._size, self._position + size)
        parts = []
        while self._position < end:
            index, offset = divmod(self._position, CHUNK)
            part = self._chunk(index)[offset : offset + end - self._position]
            parts.append(part)
            self._position += len(part)
        return b"".join(parts)

    def readall(self) -> bytes:
        return self.read()

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def verify_all(self) -> int:
        """Authenticate every chunk once (for verifications); returns the plaintext size."""
        self._check_open()
        for index in range(self._chunks):
            self._chunk(index)
        return self._size

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed age reader")

    def _chunk(self, index: int) -> bytes:
        if index != self._cached_index:
            self._source.seek(self._payload + index * _SEALED)
            last = index == self._chunks - 1
            sealed = _read_exactly(self._source, self._last_size if last else _SEALED)
            self._cached = self._open_chunk(index, sealed, last)
            self._cached_index = index
        return self._cached

    def _open_chunk(self, index: int, sealed: bytes, last: bool) -> bytes:
        try:
            plaintext = self._aead.decrypt(_stream_nonce(index, last), sealed, None)
        except InvalidTag:
            if not last:
                raise AgeError(AgeError.ALTERED) from None
            if len(sealed) == _SEALED:
                try:  # a full chunk that is not the last: the rest of the file is missing
                    self._aead.decrypt(_stream_nonce(index, False), sealed, None)
                except InvalidTag:
                    raise AgeError(AgeError.ALTERED) from None
                raise AgeError(AgeError.TRUNCATED) from None
            raise AgeError(AgeError.TRUNCATED_OR_ALTERED) from None
        if last and not plaintext and index:
            raise AgeError(AgeError.INVALID)  # only an empty file ends with an empty chunk
        return plaintext


def _chunking(payload: int) -> tuple[int, int]:
    """The number of chunks in ``payload`` encrypted bytes, and the size of the last."""
    if payload < _TAG:  # not even one (empty) chunk
        raise AgeError(AgeError.TRUNCATED)
    chunks = -(-payload // _SEALED)
    last_size = payload - (chunks - 1) * _SEALED
    if last_size < _TAG:  # cut inside a chunk's tag
        raise AgeError(AgeError.TRUNCATED)
    return chunks, last_size


class AgeLayout(NamedTuple):
    passphrase: bool  # one scrypt stanza; otherwise stanzas for recipients
    stanzas: int
    chunks: int
    size: int  # plaintext bytes


def inspect(source: BinaryIO) -> AgeLayout:
    """What can be checked of an age file without its key: the header's syntax and a
    payload length an encoder writes (``AgeError`` otherwise). The MAC and the chunks
    need the file key: an altered chunk, or a file cut exactly at a chunk boundary, pass.
    ``source`` is read from its current position, where the file starts."""
    start = source.tell()
    header = _read_header(source)
    kinds = [args[0] for args, _ in header.stanzas]
    if b"scrypt" in kinds and len(kinds) > 1:
        raise AgeError(AgeError.INVALID)
    payload = source.seek(0, os.SEEK_END) - start - header.length - _NONCE
    chunks, _ = _chunking(payload)
    return AgeLayout(b"scrypt" in kinds, len(kinds), chunks, payload - chunks * _TAG)


def _read_exactly(source: BinaryIO, size: int) -> bytes:
    """``size`` bytes; a short read means the file was cut."""
    data = source.read(size)
    while len(data) < size:
        more = source.read(size - len(data))
        if not more:
            raise AgeError(AgeError.TRUNCATED)
        data += more
    return data

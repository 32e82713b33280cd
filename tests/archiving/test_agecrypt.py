"""The age format against the reference tool: our files open with ``age -d``, ``age``'s
files open with ours (seeking included), and damaged files or wrong keys are refused.

``age`` 1.1 reads passphrases from a terminal only: those runs go through a pseudo-terminal.
"""

from __future__ import annotations

import base64
import io
import os
import pty
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from backup_api.archiving.agecrypt import (
    CHUNK,
    MAX_SCRYPT_LOG_N,
    AgeDecryptingReader,
    AgeEncryptingSink,
    AgeError,
    generate_identity,
    inspect,
    parse_identity,
    parse_recipient,
    recipient_of,
)
from tests.archiving.test_archive_process_imports import baseline, imported

SEALED = CHUNK + 16
PASSPHRASE = "cheval correct pile agrafe"
#: Cheap scrypt for our own passphrase files (``age -p`` itself always writes 18).
FAST_LOG_N = 10


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def keygen(directory: Path, name: str = "key.txt") -> tuple[Path, str]:
    """A key file made by ``age-keygen`` and its recipient."""
    path = directory / name
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return path, recipient


def encrypt(data: bytes, pieces: int = 7, **keys: object) -> bytes:
    """Our encryption of ``data``, written in uneven pieces."""
    out = io.BytesIO()
    sink = AgeEncryptingSink(out, **keys)  # type: ignore[arg-type]
    rng = random.Random(len(data))
    position = 0
    while position < len(data):
        step = rng.randint(1, max(1, 2 * len(data) // pieces))
        sink.write(memoryview(data)[position : position + step])
        position += step
    sink.close()
    return out.getvalue()


def in_terminal(argv: list[str], passphrase: str) -> tuple[int, bytes]:
    """Run ``argv`` with a pseudo-terminal as its controlling terminal, typing
    ``passphrase`` at every passphrase prompt; its exit status and what it showed."""
    pid, master = pty.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.execvp(argv[0], argv)  # noqa: S606 (the tool itself, in the terminal)
        finally:
            os._exit(127)
    shown = b""
    answered = 0
    try:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not data:
                break
            shown += data
            # Prompts: "Enter passphrase...:", "Confirm passphrase:".
            while answered < shown.count(b"passphrase") and answered < 2:
                os.write(master, passphrase.encode() + b"\r")
                answered += 1
    finally:
        os.close(master)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown


def header_length(data: bytes) -> int:
    footer = data.index(b"\n--- ")
    return data.index(b"\n", footer + 1) + 1


def read_with(data: bytes, **keys: object) -> AgeDecryptingReader:
    return AgeDecryptingReader(io.BytesIO(data), **keys)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- ours -> age
@pytest.mark.parametrize(
    "size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * 1024 * 1024 + 5]
)
def test_age_decrypts_what_we_encrypt_to_a_recipient(tmp_path: Path, size: int) -> None:
    key, recipient = keygen(tmp_path)
    data = payload(size)
    encrypted = tmp_path / "f.age"
    encrypted.write_bytes(encrypt(data, recipients=[recipient]))
    done = subprocess.run(
        ["age", "-d", "-i", str(key), str(encrypted)], check=True, capture_output=True
    )
    assert done.stdout == data
    # Chunks are full but the last; an exact multiple ends on a full chunk, not an empty one.
    chunks = max(1, -(-size // CHUNK))
    assert (
        len(encrypted.read_bytes())
        == header_length(encrypted.read_bytes()) + 16 + size + 16 * chunks
    )


def test_every_recipient_can_decrypt(tmp_path: Path) -> None:
    first, first_recipient = keygen(tmp_path, "first.txt")
    second, second_recipient = keygen(tmp_path, "second.txt")
    data = payload(100_000)
    encrypted = tmp_path / "f.age"
    encrypted.write_bytes(encrypt(data, recipients=[first_recipient, second_recipient]))
    for key in (first, second):
        done = subprocess.run(
            ["age", "-d", "-i", str(key), str(encrypted)], check=True, capture_output=True
        )
        assert done.stdout == data


def test_age_decrypts_what_we_encrypt_with_a_passphrase(tmp_path: Path) -> None:
    data = payload(CHUNK + 1)
    encrypted = tmp_path / "f.age"
    encrypted.write_bytes(encrypt(data, passphrase=PASSPHRASE, scrypt_log_n=FAST_LOG_N))
    out = tmp_path / "out.bin"
    status, shown = in_terminal(["age", "-d", "-o", str(out), str(encrypted)], PASSPHRASE)
    assert status == 0, shown
    assert out.read_bytes() == data
    status, shown = in_terminal(["age", "-d", "-o", str(tmp_path / "no"), str(encrypted)], "non")
    assert status != 0
    assert b"incorrect passphrase" in shown


# ---------------------------------------------------------------------------- age -> ours
def test_we_read_and_seek_in_what_age_encrypts_to_a_recipient(tmp_path: Path) -> None:
    key, recipient = keygen(tmp_path)
    data = payload(5 * CHUNK + 12_345, seed=1)
    plain = tmp_path / "in.bin"
    plain.write_bytes(data)
    encrypted = tmp_path / "f.age"
    subprocess.run(["age", "-r", recipient, "-o", str(encrypted), str(plain)], check=True)
    with encrypted.open("rb") as source:
        # The key file's text as age-keygen wrote it (comments included) is an identity.
        reader = AgeDecryptingReader(source, identities=[key.read_text()])
        assert reader.size == len(data)
        assert reader.seekable()
        assert reader.readable()
        assert reader.seek(-100, os.SEEK_END) == len(data) - 100
        assert reader.read() == data[-100:]
        assert reader.read(10) == b""
        assert reader.seek(CHUNK - 7) == CHUNK - 7
        assert reader.read(20) == data[CHUNK - 7 : CHUNK + 13]  # across a chunk boundary
        assert reader.seek(-30, os.SEEK_CUR) == CHUNK - 17
        assert reader.tell() == CHUNK - 17
        buffer = bytearray(3 * CHUNK)
        assert reader.readinto(buffer) == 3 * CHUNK
        assert bytes(buffer) == data[CHUNK - 17 : 4 * CHUNK - 17]
        rng = random.Random(2)
        for _ in range(50):
            start = rng.randrange(len(data) + 10)
            count = rng.randrange(2 * CHUNK)
            reader.seek(start)
            assert reader.read(count) == data[start : start + count]
        reader.seek(0)
        assert reader.read() == data
        assert reader.verify_all() == len(data)


def test_zipfile_reads_an_archive_through_the_reader(tmp_path: Path) -> None:
    """What restores do: ``zipfile`` seeks to the central directory, then reads the entry."""
    key, recipient = keygen(tmp_path)
    sql = b"INSERT INTO t VALUES (1, 'row');\n" * 30_000
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("a.sql", sql)
    encrypted = tmp_path / "a.zip.age"
    subprocess.run(["age", "-r", recipient, "-o", str(encrypted), str(archive)], check=True)
    with (
        encrypted.open("rb") as source,
        AgeDecryptingReader(source, identities=[key.read_text()]) as reader,
        zipfile.ZipFile(reader) as zipped,
    ):
        assert zipped.testzip() is None
        assert zipped.read("a.sql") == sql


def test_we_read_what_age_encrypts_with_a_passphrase(tmp_path: Path) -> None:
    data = payload(2 * CHUNK + 3, seed=3)
    plain = tmp_path / "in.bin"
    plain.write_bytes(data)
    encrypted = tmp_path / "f.age"
    status, shown = in_terminal(["age", "-p", "-o", str(encrypted), str(plain)], PASSPHRASE)
    assert status == 0, shown
    with encrypted.open("rb") as source:
        reader = AgeDecryptingReader(source, passphrase=PASSPHRASE)
        reader.seek(CHUNK)
        assert reader.read() == data[CHUNK:]
        reader.seek(0)
        assert reader.read(CHUNK + 1) == data[: CHUNK + 1]


# ---------------------------------------------------------------------------- refusals
def test_a_truncated_file_is_refused() -> None:
    identity, recipient = generate_identity()
    data = payload(3 * CHUNK + 100)
    encrypted = encrypt(data, recipients=[recipient])
    start = header_length(encrypted) + 16
    cases = {
        start + 2 * SEALED: AgeError.TRUNCATED,  # cut at a chunk boundary
        start + 3 * SEALED + 10: AgeError.TRUNCATED,  # inside the last chunk's tag
        start + SEALED + 1000: AgeError.TRUNCATED_OR_ALTERED,  # inside a chunk
        start + 5: AgeError.TRUNCATED,  # no chunk at all
        start - 3: AgeError.TRUNCATED,  # inside the nonce
        header_length(encrypted) - 10: AgeError.TRUNCATED,  # inside the header
    }
    for length, message in cases.items():
        with pytest.raises(AgeError) as refused:
            read_with(encrypted[:length], identities=[identity])
        assert str(refused.value) == message, length
    assert read_with(encrypted, identities=[identity]).read() == data


def test_age_itself_refuses_a_file_cut_at_a_chunk_boundary(tmp_path: Path) -> None:
    """Our reading of the format agrees with the reference tool on truncation."""
    key, recipient = keygen(tmp_path)
    encrypted = encrypt(payload(3 * CHUNK), recipients=[recipient])
    cut = tmp_path / "cut.age"
    cut.write_bytes(encrypted[: header_length(encrypted) + 16 + 2 * SEALED])
    done = subprocess.run(["age", "-d", "-i", str(key), str(cut)], capture_output=True)
    assert done.returncode != 0


def flipped(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


def test_an_altered_chunk_is_refused_when_read() -> None:
    identity, recipient = generate_identity()
    data = payload(3 * CHUNK + 100)
    encrypted = encrypt(data, recipients=[recipient])
    start = header_length(encrypted) + 16
    altered = flipped(encrypted, start + SEALED + 500)  # in the second chunk
    reader = read_with(altered, identities=[identity])  # the final chunk is sound
    assert reader.read(CHUNK) == data[:CHUNK]  # the first one too
    with pytest.raises(AgeError, match=r"^fichier chiffré altéré$"):
        reader.read(1)
    reader.seek(2 * CHUNK)
    assert reader.read() == data[2 * CHUNK :]
    with pytest.raises(AgeError, match=r"^fichier chiffré altéré$"):
        reader.verify_all()
    # A tag altered in the final full chunk: not a sign of truncation either.
    last_full = encrypt(payload(2 * CHUNK), recipients=[recipient])
    with pytest.raises(AgeError, match=r"^fichier chiffré altéré$"):
        read_with(flipped(last_full, len(last_full) - 1), identities=[identity])


def test_an_altered_header_is_refused() -> None:
    identity, recipient = generate_identity()
    encrypted = encrypt(payload(1000), recipients=[recipient])
    end = header_length(encrypted)
    footer = encrypted.rindex(b"\n--- ", 0, end) + 5
    mac = base64.b64decode(encrypted[footer : end - 1] + b"=")
    other_mac = base64.b64encode(flipped(mac, 7)).rstrip(b"=")
    with pytest.raises(AgeError, match=r"^fichier chiffré altéré$"):
        read_with(encrypted[:footer] + other_mac + encrypted[end - 1 :], identities=[identity])
    # Anything the MAC covers, here one more (unknown) stanza before the footer.
    extra = encrypted[: footer - 4] + b"-> grease x\nAAAA\n" + encrypted[footer - 4 :]
    with pytest.raises(AgeError, match=r"^fichier chiffré altéré$"):
        read_with(extra, identities=[identity])
    for position in (3, end - 2):  # the version line; the MAC's base64 made non-canonical
        with pytest.raises(AgeError, match=r"^format age invalide$"):
            read_with(flipped(encrypted, position), identities=[identity])
    with pytest.raises(AgeError, match=r"^format age invalide$"):
        read_with(b"PK\x03\x04" + bytes(100), identities=[identity])


def test_a_wrong_key_is_refused() -> None:
    identity, recipient = generate_identity()
    other_identity, _ = generate_identity()
    to_recipient = encrypt(payload(10), recipients=[recipient])
    with_passphrase = encrypt(payload(10), passphrase=PASSPHRASE, scrypt_log_n=FAST_LOG_N)
    with pytest.raises(AgeError, match=r"^identité incorrecte$"):
        read_with(to_recipient, identities=[other_identity])
    with pytest.raises(AgeError, match=r"^identité incorrecte$"):
        read_with(with_passphrase, identities=[identity])
    with pytest.raises(AgeError, match=r"^phrase secrète incorrecte$"):
        read_with(with_passphrase, passphrase=PASSPHRASE + "!")
    with pytest.raises(AgeError, match=r"^phrase secrète incorrecte$"):
        read_with(to_recipient, passphrase=PASSPHRASE)
    assert read_with(to_recipient, identities=[other_identity, identity]).read() == payload(10)
    assert read_with(with_passphrase, passphrase=PASSPHRASE).read() == payload(10)


def test_an_absurd_scrypt_work_factor_is_refused_before_any_work() -> None:
    encrypted = encrypt(b"x", passphrase=PASSPHRASE, scrypt_log_n=FAST_LOG_N)
    hard = encrypted.replace(b" 10\n", b" %d\n" % (MAX_SCRYPT_LOG_N + 1), 1)
    with pytest.raises(AgeError, match="facteur de travail scrypt trop élevé"):
        read_with(hard, passphrase=PASSPHRASE)
    with pytest.raises(ValueError, match="scrypt_log_n"):
        AgeEncryptingSink(io.BytesIO(), passphrase=PASSPHRASE, scrypt_log_n=MAX_SCRYPT_LOG_N + 1)


def test_inspect_checks_what_needs_no_key(tmp_path: Path) -> None:
    _, first = generate_identity()
    _, second = generate_identity()
    data = payload(2 * CHUNK + 7)
    encrypted = encrypt(data, recipients=[first, second])
    layout = inspect(io.BytesIO(encrypted))
    assert (layout.passphrase, layout.stanzas, layout.chunks, layout.size) == (
        False,
        2,
        3,
        len(data),
    )
    with_passphrase = encrypt(b"", passphrase=PASSPHRASE, scrypt_log_n=FAST_LOG_N)
    assert inspect(io.BytesIO(with_passphrase)) == (True, 1, 1, 0)
    plain = tmp_path / "in.bin"
    plain.write_bytes(data)
    by_age = tmp_path / "f.age"
    subprocess.run(["age", "-r", first, "-o", str(by_age), str(plain)], check=True)
    with by_age.open("rb") as source:
        assert inspect(source) == (False, 1, 3, len(data))
    start = header_length(encrypted) + 16
    with pytest.raises(AgeError, match=r"^fichier chiffré tronqué$"):
        inspect(io.BytesIO(encrypted[: start + 2 * SEALED + 15]))
    with pytest.raises(AgeError, match=r"^format age invalide$"):
        inspect(io.BytesIO(flipped(encrypted, 3)))
    # Without the key a cut at a chunk boundary looks like a shorter file.
    assert inspect(io.BytesIO(encrypted[: start + SEALED])).size == CHUNK


# ---------------------------------------------------------------------------- keys
def test_keys_agree_with_age_keygen(tmp_path: Path) -> None:
    key, recipient = keygen(tmp_path)
    secret_line = next(ln for ln in key.read_text().splitlines() if ln.startswith("AGE-"))
    assert recipient_of(secret_line) == recipient
    assert recipient_of(key.read_text()) == recipient
    assert parse_identity(secret_line) == parse_identity(secret_line.lower())
    identity, ours = generate_identity()
    assert identity.startswith("AGE-SECRET-KEY-1")
    assert ours.startswith("age1")
    assert recipient_of(identity) == ours
    assert len(parse_recipient(ours)) == 32
    mine = tmp_path / "mine.txt"
    mine.write_text(identity + "\n")
    done = subprocess.run(["age-keygen", "-y", str(mine)], capture_output=True, text=True)
    assert done.stdout.strip() == ours


def test_malformed_keys_are_refused_without_being_repeated() -> None:
    identity, recipient = generate_identity()
    bad_identities = [
        "",
        identity[:-1] + ("q" if identity[-1] != "Q" else "P"),  # checksum
        identity[:20] + identity[20:].lower(),  # mixed case
        recipient,
        identity + "\n" + identity,  # two keys
        identity.replace("AGE-SECRET-KEY-1", "AGE-SECRET-KEY-2"),
    ]
    for bad in bad_identities:
        with pytest.raises(ValueError, match=r"^identité age invalide") as refused:
            parse_identity(bad)
        assert not bad or bad not in str(refused.value)
    for bad in ["", recipient[:-1] + ("q" if recipient[-1] != "q" else "p"), identity, "age1"]:
        with pytest.raises(ValueError, match=r"^destinataire age invalide"):
            parse_recipient(bad)


# ---------------------------------------------------------------------------- memory
class RecordingSink:
    def __init__(self) -> None:
        self.writes: list[int] = []
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        # A raw file's short writes: at most 50,000 bytes accepted per call.
        accepted = min(len(data), 50_000)
        self.writes.append(len(data))
        self.data += data[:accepted]
        return accepted


def test_the_sink_holds_at_most_one_chunk() -> None:
    identity, recipient = generate_identity()
    target = RecordingSink()
    sink = AgeEncryptingSink(target, recipients=[recipient])
    header = sink.bytes_out
    data = payload(10 * CHUNK + 3)
    pieces = [data[:1], data[1 : 5 * CHUNK], data[5 * CHUNK : 5 * CHUNK + 100]]
    pieces += [data[i : i + 999] for i in range(5 * CHUNK + 100, len(data), 999)]
    for piece in pieces:
        sink.write(bytearray(piece))
        assert 0 < sink.buffered <= CHUNK
        # What was accepted is either encrypted already or in the one buffered chunk.
        assert sink.bytes_in - sink.buffered == (sink.bytes_out - header) // SEALED * CHUNK
    sink.close()
    assert sink.buffered == 0
    assert sink.bytes_out == len(target.data)
    # No call to the sink is given more than one sealed chunk.
    assert max(target.writes) <= max(SEALED, header)
    assert read_with(bytes(target.data), identities=[identity]).read() == data


# ---------------------------------------------------------------------------- imports
def test_the_module_imports_only_the_standard_library_and_cryptography(tmp_path: Path) -> None:
    """It is meant for the archive process, whose imports are restricted (see
    ``backup_api.archiving.child``): ``cryptography`` (and its ``_cffi_backend``) at most."""
    log = tmp_path / "importtime.log"
    command = [sys.executable, "-X", "importtime", "-P", "-c"]
    with log.open("wb") as report:
        subprocess.run(
            [*command, "import backup_api.archiving.agecrypt"], stderr=report, check=True
        )
    modules = imported(log)
    assert "cryptography.hazmat.primitives.ciphers.aead" in modules
    assert "cryptography.hazmat.primitives.kdf.scrypt" not in modules  # only when needed
    outside = {
        name.split(".")[0]
        for name in modules - baseline(tmp_path / "baseline.log", dict(os.environ))
        if name.split(".")[0] not in sys.stdlib_module_names
    }
    assert outside <= {"backup_api", "cryptography", "_cffi_backend"}

"""The streaming ZIP writer and the validating reader, checked by zipfile and Info-ZIP."""

from __future__ import annotations

import array
import functools
import hashlib
import io
import json
import os
import random
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import pytest
from isal import isal_zlib

from backup_api.archiving import archive as archive_module
from backup_api.archiving.archive import (
    ArchiveError,
    ArchiveResult,
    Compression,
    ZipStreamWriter,
    open_sql_entry,
)


def check_archive(source: Path | BinaryIO) -> None:
    """What a verification and a restore both do with an archive: the one validator
    (``open_sql_entry``), then the SQL read to the end (every CRC checked)."""
    _, stream = open_sql_entry(source)
    with stream:
        while stream.read(1 << 20):
            pass


ENGINES = [
    (Compression.ISAL, 0),
    (Compression.ISAL, 1),
    (Compression.ISAL, 2),
    (Compression.ISAL, 3),
    (Compression.ZLIB, 0),
    (Compression.ZLIB, 1),
    (Compression.ZLIB, 6),
    (Compression.ZLIB, 9),
    (Compression.STORED, 0),
]
WORDS = [
    "alpha", "beta", "gamma", "client", "commande", "produit", "facture", "adresse",
    "livraison", "paris", "lyon", "marseille", "été", "café", "naïve", "Zoë", "東京",
    "statut", "payé", "annulé", "remboursé",
]  # fmt: skip


# ---------------------------------------------------------------------------- data


@functools.cache
def _sql_block() -> bytes:
    """8 MiB of varied pg_dump COPY rows and mysqldump INSERTs (deterministic)."""
    rng = random.Random(1234)
    lines: list[str] = ["COPY public.orders (id, name, amount, created, doc) FROM stdin;\n"]
    size = 0
    row = 0
    while size < 8 << 20:
        row += 1
        stamp = (
            f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
        )
        name = " ".join(rng.choices(WORDS, k=rng.randint(1, 4)))
        doc = json.dumps(
            {"id": row, "score": rng.randint(0, 10**6) / 1000, "tags": rng.sample(WORDS, 2)},
            ensure_ascii=False,
        )
        amount = rng.randint(0, 10**7) / 100
        if row % 3:
            line = f"{row}\t{name}\t{amount}\t{stamp}\t{doc}\n"
        else:
            line = f"INSERT INTO `orders` VALUES ({row},'{name}',{amount},'{stamp}','{doc}');\n"
        lines.append(line)
        size += len(line.encode())
    return "".join(lines).encode()[: 8 << 20]


def sql_like(size: int) -> bytes:
    """``size`` bytes of SQL-like text; beyond 8 MiB the block repeats (far outside the
    32 KiB deflate window, so speed and ratio stay those of unique text)."""
    block = _sql_block()
    return (block * (size // len(block) + 1))[:size]


def mixed_payload() -> bytes:
    """Compressible text, incompressible bytes, a run of zeros, non-ASCII text."""
    rng = random.Random(99)
    return (
        sql_like(2_500_000)
        + rng.randbytes(300_000)
        + bytes(700_000)
        + "-- fin: été, 東京, Zoë\n".encode() * 5000
    )


def chunks(data: bytes) -> Iterator[bytes | bytearray | memoryview]:
    """``data`` in irregular pieces of every accepted type, with empty writes between."""
    sizes = [1, 0, 7, 65535, 65536, 65537, 0, 1 << 20, 3, 300_000, 12345, 2 << 20]
    view = memoryview(data)
    position = 0
    turn = 0
    while position < len(data):
        size = sizes[turn % len(sizes)]
        piece = view[position : position + size]
        kind = turn % 3
        yield bytes(piece) if kind == 0 else bytearray(piece) if kind == 1 else piece
        yield b""
        position += size
        turn += 1


def write_archive(
    sink: archive_module.ArchiveSink,
    data: bytes,
    compression: Compression = Compression.ISAL,
    level: int = 1,
    name: str = "dump.sql",
) -> ArchiveResult:
    writer = ZipStreamWriter(sink, name, compression=compression, level=level)
    for piece in chunks(data):
        writer.write(piece)
    assert writer.bytes_in == len(data)
    return writer.close()


def build(path: Path, data: bytes, compression: Compression = Compression.ISAL) -> Path:
    with path.open("wb") as handle:
        write_archive(handle, data, compression)
    return path


def unzip(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["unzip", *map(str, args)], capture_output=True, check=False)


def assert_unzip_clean(path: Path) -> None:
    tested = unzip("-t", "-q", path)
    output = (tested.stdout + tested.stderr).decode(errors="replace")
    assert tested.returncode == 0, output
    assert "No errors detected" in output
    assert "warning" not in output.lower()


class WriteOnly:
    """A sink with nothing but ``write``: the writer cannot seek, tell or flush it."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self.sizes: list[int] = []

    def write(self, data: bytes | memoryview, /) -> int:
        self.sizes.append(len(data))
        return self._buffer.write(data)

    def getvalue(self) -> bytes:
        return self._buffer.getvalue()


class Unseekable(WriteOnly):
    """What zipfile needs to stream: ``write`` and ``flush``, no ``seek`` nor ``tell``."""

    def flush(self) -> None:
        pass


class NullSink:
    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes | memoryview, /) -> int:
        self.size += len(data)
        return len(data)


# ---------------------------------------------------------------------------- the writer


@pytest.mark.parametrize(("compression", "level"), ENGINES)
def test_round_trip(tmp_path: Path, compression: Compression, level: int) -> None:
    data = mixed_payload()
    path = tmp_path / "a.zip"
    with path.open("wb") as handle:
        result = write_archive(handle, data, compression, level)
    raw = path.read_bytes()
    assert result.size == len(raw)
    assert result.sha256 == hashlib.sha256(raw).hexdigest()
    assert result.crc32 == zlib.crc32(data)
    assert result.uncompressed_size == len(data)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        (info,) = archive.infolist()
        assert info.filename == "dump.sql"
        assert info.file_size == len(data)
        assert info.compress_size == result.compressed_size
        expected = zipfile.ZIP_STORED if compression is Compression.STORED else 8
        assert info.compress_type == expected
        assert archive.read(info) == data
    assert_unzip_clean(path)
    extracted = unzip("-p", path)
    assert extracted.returncode == 0
    assert extracted.stdout == data
    name, stream = open_sql_entry(path)
    with stream:
        assert name == "dump.sql"
        assert stream.read() == data
    check_archive(path)
    if compression is not Compression.STORED and level > 0:
        assert result.compressed_size < len(data) * 0.6


@pytest.mark.parametrize("name", ["dump.sql", "sauvegarde_été_東京.sql"])
@pytest.mark.parametrize("level", [1, 6, 9])
def test_bytes_match_cpython_zipfile_streaming(name: str, level: int) -> None:
    """With zlib, the archive is byte for byte what zipfile writes to an unseekable stream
    with force_zip64=True: every header field has the value CPython chose."""
    data = sql_like(300_000) + b"\x00" * 70_000 + sql_like(50_000)
    moment = datetime(2024, 5, 6, 7, 8, 11)
    ours = WriteOnly()
    writer = ZipStreamWriter(
        ours, name, compression=Compression.ZLIB, level=level, date_time=moment
    )
    reference = Unseekable()
    info = zipfile.ZipInfo(name, date_time=(2024, 5, 6, 7, 8, 11))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.external_attr = 0o100644 << 16
    info._compresslevel = level  # type: ignore[attr-defined]  # what ZipFile.write sets
    with (
        zipfile.ZipFile(reference, "w", compresslevel=level) as archive,  # type: ignore[arg-type]
        archive.open(info, "w", force_zip64=True) as entry,
    ):
        for start in range(0, len(data), 100_000):
            writer.write(data[start : start + 100_000])
            entry.write(data[start : start + 100_000])
    writer.close()
    assert ours.getvalue() == reference.getvalue()


def test_non_ascii_name_sets_the_utf8_flag(tmp_path: Path) -> None:
    path = tmp_path / "u.zip"
    with path.open("wb") as handle:
        write_archive(handle, b"SELECT 1;\n", name="base_été_東京.sql")
    with zipfile.ZipFile(path) as archive:
        (info,) = archive.infolist()
        assert info.filename == "base_été_東京.sql"
        assert info.flag_bits & 0x800
    assert_unzip_clean(path)
    with path.open("wb") as handle:
        write_archive(handle, b"SELECT 1;\n", name="ascii.sql")
    with zipfile.ZipFile(path) as archive:
        assert archive.infolist()[0].flag_bits == 0x08  # data descriptor only


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2024, 2, 29, 23, 59, 59), (2024, 2, 29, 23, 59, 58)),  # 2-second DOS unit
        (datetime(1970, 1, 1, 12, 0, 0), (1980, 1, 1, 0, 0, 0)),  # clamped like zipfile
        (datetime(2200, 1, 1, 0, 0, 0), (2107, 12, 31, 23, 59, 58)),
    ],
)
def test_header_fields(moment: datetime, expected: tuple[int, ...]) -> None:
    sink = WriteOnly()
    writer = ZipStreamWriter(sink, "t.sql", date_time=moment)
    writer.write(b"SELECT 1;\n")
    writer.close()
    with zipfile.ZipFile(io.BytesIO(sink.getvalue())) as archive:
        (info,) = archive.infolist()
    assert info.date_time == expected
    assert info.create_system == 3
    assert info.external_attr >> 16 == 0o100644
    assert info.extract_version == 45
    assert info.header_offset == 0
    assert info.flag_bits & 0x08


def test_writer_states_and_progress() -> None:
    sink = WriteOnly()
    writer = ZipStreamWriter(sink, "p.sql", compression=Compression.STORED)
    assert (writer.bytes_in, writer.bytes_out) == (0, 0)  # the header waits for data
    writer.write(bytes(100_000))
    assert writer.bytes_in == 100_000
    assert writer.bytes_out >= 100_000
    first = writer.close()
    assert writer.close() is first
    assert writer.bytes_out == first.size == len(sink.getvalue())
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"more")


def test_memoryviews_of_any_format_count_bytes() -> None:
    numbers = array.array("I", range(50_000))
    sink = WriteOnly()
    writer = ZipStreamWriter(sink, "n.sql")
    writer.write(memoryview(numbers))
    writer.write(memoryview(numbers.tobytes()).cast("B", shape=[100, 2000]))
    result = writer.close()
    expected = numbers.tobytes() * 2
    assert result.uncompressed_size == len(expected)
    with zipfile.ZipFile(io.BytesIO(sink.getvalue())) as archive:
        assert archive.read("n.sql") == expected


@pytest.mark.parametrize(
    ("compression", "level"),
    [
        (Compression.ISAL, 4),
        (Compression.ISAL, -1),
        (Compression.ISAL, 9),
        (Compression.ZLIB, 10),
        (Compression.ZLIB, -1),
        (Compression.ZLIB, True),
    ],
)
def test_level_validation(compression: Compression, level: int) -> None:
    with pytest.raises(ValueError, match=f"compression level .* {compression.value}"):
        ZipStreamWriter(WriteOnly(), "x.sql", compression=compression, level=level)


def test_stored_ignores_the_level_and_unknown_engines_are_refused() -> None:
    ZipStreamWriter(WriteOnly(), "x.sql", compression=Compression.STORED, level=42).close()
    ZipStreamWriter(WriteOnly(), "x.sql", compression="zlib", level=9).close()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lzma"):
        ZipStreamWriter(WriteOnly(), "x.sql", compression="lzma")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "../x.sql",
        "a/b.sql",
        "/abs.sql",
        "a\\b.sql",
        "x\x00.sql",
        "c:x.sql",
        "x\n.sql",
        "a..b.sql",
        "é" * 127 + "ab",  # 256 UTF-8 bytes
        "\udcff.sql",  # lone surrogate: not encodable
    ],
)
def test_entry_name_validation(name: str) -> None:
    with pytest.raises(ValueError, match="invalid archive entry name"):
        ZipStreamWriter(WriteOnly(), name)


@pytest.mark.parametrize("name", ["dump.sql", "base_été.sql", "é" * 127 + "a", ".sql"])
def test_plain_names_are_accepted(name: str) -> None:
    sink = WriteOnly()
    ZipStreamWriter(sink, name).close()
    with zipfile.ZipFile(io.BytesIO(sink.getvalue())) as archive:
        assert archive.namelist() == [name]


@pytest.mark.parametrize(("compression", "level"), [ENGINES[1], ENGINES[6], ENGINES[-1]])
def test_sequential_sink_with_only_write(compression: Compression, level: int) -> None:
    sink = WriteOnly()
    assert not any(hasattr(sink, attr) for attr in ("seek", "tell", "flush", "seekable"))
    data = mixed_payload()
    result = write_archive(sink, data, compression, level)
    raw = sink.getvalue()
    assert result.size == len(raw) == sum(sink.sizes)
    assert result.sha256 == hashlib.sha256(raw).hexdigest()
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        assert archive.read("dump.sql") == data
    # Small outputs are gathered: a write under 64 KiB is followed by a big one, or last.
    small = 64 * 1024
    for size, following in zip(sink.sizes, sink.sizes[1:], strict=False):
        assert size >= small or following >= small, sink.sizes


def test_short_writes_are_completed() -> None:
    class Trickle(WriteOnly):
        def write(self, data: bytes | memoryview, /) -> int:
            return super().write(data[:1000])

    sink = Trickle()
    data = sql_like(500_000)
    result = write_archive(sink, data, Compression.STORED)
    with zipfile.ZipFile(io.BytesIO(sink.getvalue())) as archive:
        assert archive.read("dump.sql") == data
    assert result.size == len(sink.getvalue())


def test_a_failing_sink_poisons_the_writer() -> None:
    class Full:
        calls = 0

        def write(self, data: bytes | memoryview, /) -> int:
            self.calls += 1
            if self.calls == 3:  # the header, the first chunk, then the disk is full
                raise OSError(28, "No space left on device")
            return len(data)

    writer = ZipStreamWriter(Full(), "f.sql", compression=Compression.STORED)
    writer.write(bytes(100_000))
    with pytest.raises(OSError, match="No space"):
        writer.write(bytes(100_000))
    with pytest.raises(ValueError, match="failed earlier"):
        writer.write(b"x")
    with pytest.raises(ValueError, match="failed earlier"):
        writer.close()


# ---------------------------------------------------------------------------- ZIP64

ZIP64_TOTAL = (4 << 30) + (64 << 20)  # 4 GiB + 64 MiB: file_size needs 33 bits


def test_zip64_entry_over_four_gib(tmp_path: Path) -> None:
    """4 GiB + 64 MiB of zeros through isal level 1: the entry size takes the ZIP64 field."""
    path = tmp_path / "big.zip"
    chunk = memoryview(bytes(8 << 20))
    began = time.perf_counter()
    with path.open("wb") as handle:
        writer = ZipStreamWriter(handle, "big.sql", compression=Compression.ISAL, level=1)
        for _ in range(ZIP64_TOTAL // len(chunk)):
            writer.write(chunk)
        result = writer.close()
    written = time.perf_counter() - began
    assert result.uncompressed_size == ZIP64_TOTAL
    assert result.size == path.stat().st_size
    # Info-ZIP decompresses it all in parallel with Python doing the same.
    with subprocess.Popen(
        ["unzip", "-t", "-q", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as tested:
        try:
            with zipfile.ZipFile(path) as archive:
                (info,) = archive.infolist()
                assert info.file_size == ZIP64_TOTAL
                assert info.compress_size == result.compressed_size
                assert result.crc32 == info.CRC
            read_began = time.perf_counter()
            buffer = bytearray(8 << 20)
            total = 0
            name, stream = open_sql_entry(path)
            with stream:  # the CRC is checked by zipfile at the end
                while count := stream.readinto(buffer):
                    total += count
            assert (name, total) == ("big.sql", ZIP64_TOTAL)
            read = time.perf_counter() - read_began
            output, _ = tested.communicate(timeout=240)
        except BaseException:
            tested.kill()
            raise
    assert tested.returncode == 0, output
    assert "No errors detected" in output
    assert "warning" not in output.lower()
    print(
        f"\nZIP64 entry: wrote {ZIP64_TOTAL / 2**30:.2f} GiB in {written:.1f}s, "
        f"zipfile streamed it back in {read:.1f}s, whole test "
        f"{time.perf_counter() - began:.1f}s (unzip -t is the long pole)"
    )


class SparseFile:
    """A file sink that turns the test's shared zero chunk into a hole: 4 GiB on no disk."""

    def __init__(self, handle: io.BufferedWriter, zero: bytes) -> None:
        self._handle = handle
        self._zero = zero

    def write(self, data: bytes | memoryview, /) -> int:
        if isinstance(data, memoryview) and data.obj is self._zero:
            self._handle.seek(len(data), os.SEEK_CUR)
            return len(data)
        return self._handle.write(data)


def test_zip64_archive_over_four_gib(tmp_path: Path) -> None:
    """Stored: the compressed size and the central directory offset pass 4 GiB too, so the
    ZIP64 end of central directory record and its locator are written. The data is a hole
    in a sparse file; reading 4 GiB of it back would only re-test the CRC (slowly), so the
    structure is checked instead, by zipfile, Info-ZIP and by hand."""
    path = tmp_path / "huge.zip"
    zero = bytes(8 << 20)
    chunk = memoryview(zero)
    head, tail = b"-- head\n", b"-- tail\n"
    began = time.perf_counter()
    with path.open("wb") as handle:
        writer = ZipStreamWriter(SparseFile(handle, zero), "huge.sql", compression="stored")  # type: ignore[arg-type]
        writer.write(head)
        for _ in range(ZIP64_TOTAL // len(chunk)):
            writer.write(chunk)
        writer.write(tail)
        result = writer.close()
    written = time.perf_counter() - began
    size = ZIP64_TOTAL + len(head) + len(tail)
    crc = isal_zlib.crc32(head)  # the writer used zlib's crc32 for "stored"
    for _ in range(ZIP64_TOTAL // len(zero)):
        crc = isal_zlib.crc32(zero, crc)
    assert result.crc32 == isal_zlib.crc32(tail, crc)
    assert result.uncompressed_size == result.compressed_size == size
    assert result.size == path.stat().st_size
    with zipfile.ZipFile(path) as archive:
        (info,) = archive.infolist()
        assert info.file_size == info.compress_size == size
        assert result.crc32 == info.CRC
        with archive.open(info) as entry:
            assert entry.read(len(head)) == head
    with path.open("rb") as handle:
        handle.seek(30 + len("huge.sql") + 20 + size)
        descriptor = handle.read(24)
        handle.seek(-200, os.SEEK_END)
        end_records = handle.read()
    assert struct.unpack("<4sIQQ", descriptor) == (b"PK\x07\x08", result.crc32, size, size)
    assert b"PK\x06\x06" in end_records  # ZIP64 end of central directory record
    assert b"PK\x06\x07" in end_records  # and its locator
    end = end_records[end_records.rindex(b"PK\x05\x06") :]
    assert struct.unpack("<I", end[16:20]) == (0xFFFFFFFF,)  # offset is in the ZIP64 record
    listing = unzip("-lv", path)
    text = (listing.stdout + listing.stderr).decode()
    assert listing.returncode == 0, text
    assert "warning" not in text.lower()
    assert f"{size}  Stored {size}" in text
    details = subprocess.run(["zipinfo", "-v", str(path)], capture_output=True, check=False)
    assert details.returncode == 0
    assert b"warning" not in (details.stdout + details.stderr).lower()
    print(
        f"\nZIP64 archive: wrote {size / 2**30:.2f} GiB stored in {written:.1f}s, "
        f"sparse file uses {path.stat().st_blocks * 512 / 2**20:.1f} MiB on disk"
    )


# ---------------------------------------------------------------------------- memory


def test_constant_memory_in_python_objects() -> None:
    block = memoryview(sql_like(1 << 20))
    tracemalloc.start()
    try:
        writer = ZipStreamWriter(NullSink(), "m.sql")
        for _ in range(200):
            writer.write(block)
        writer.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"peak Python allocation {peak / 2**20:.1f} MiB for 200 MiB written"


def test_constant_memory_rss(tmp_path: Path) -> None:
    """200 MiB per engine in a fresh interpreter: its peak RSS (ru_maxrss, alias VmHWM,
    reset between engines through /proc/self/clear_refs) barely moves."""
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak RSS")
    block_path = tmp_path / "block.sql"
    block_path.write_bytes(sql_like(1 << 20))
    script = textwrap.dedent(
        """
        import re, sys
        from backup_api.archiving.archive import Compression, ZipStreamWriter

        class Null:
            def write(self, data):
                return len(data)

        def status(field):
            with open("/proc/self/status") as handle:
                return int(re.search(field + r":\\s+(\\d+) kB", handle.read())[1]) * 1024

        with open(sys.argv[1], "rb") as handle:
            block = memoryview(handle.read())
        for engine, level in (("isal", 1), ("isal", 3), ("zlib", 1), ("stored", 0)):
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # peak RSS := current RSS
            start = status("VmRSS")
            writer = ZipStreamWriter(Null(), "m.sql", compression=Compression(engine), level=level)
            for _ in range(20):
                writer.write(block)
            early = status("VmHWM")
            for _ in range(180):
                writer.write(block)
            writer.close()
            end = status("VmHWM")
            print(engine, level, early - start, end - early)
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(block_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    print()
    for line in run.stdout.splitlines():
        engine, level, first, later = line.split()
        print(
            f"peak RSS, {engine} level {level}: {int(first) / 2**20:+.1f} MiB over the first "
            f"20 MiB, {int(later) / 2**20:+.1f} MiB over the next 180 MiB"
        )
        assert int(first) < 40 << 20, line
        assert int(later) < 4 << 20, line  # no growth with the amount written


# ---------------------------------------------------------------------------- the reader


def zip_with(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return path


def entry_info(
    name: str, mode: int = 0o100644, dos: int = 0, method: int = zipfile.ZIP_DEFLATED
) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (mode << 16) | dos
    info.compress_type = method
    return info


def patch_central(path: Path, offset: int, fmt: str, value: int) -> None:
    """Overwrite one field of the (single) central directory header."""
    raw = bytearray(path.read_bytes())
    start = raw.rindex(b"PK\x01\x02")
    struct.pack_into(fmt, raw, start + offset, value)
    path.write_bytes(bytes(raw))


def test_reader_streams_a_valid_archive(tmp_path: Path) -> None:
    data = mixed_payload()
    path = build(tmp_path / "ok.zip", data)
    name, stream = open_sql_entry(path)
    with stream:
        assert name == stream.name == "dump.sql"
        assert stream.readable()
        assert stream.read(0) == b""
        head = stream.read(1000)
        buffer = bytearray(70_000)
        count = stream.readinto(buffer)
        rest = stream.read1(100_000) + stream.read()
        assert head + buffer[:count] + rest == data
        assert stream.read() == b""
    assert stream.closed
    with pytest.raises(ValueError, match="closed"):
        stream.read()
    stream.close()  # twice is fine
    # A file object (what the storage hands over) works as well and is left open.
    with path.open("rb") as handle:
        _, stream = open_sql_entry(handle)
        with stream:
            assert stream.read() == data
        assert not handle.closed


def test_reader_accepts_plain_zipfile_archives(tmp_path: Path) -> None:
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        path = zip_with(tmp_path / f"{method}.zip", [(entry_info("DUMP.SQL", method=method), b"S")])
        name, stream = open_sql_entry(path)
        with stream:
            assert (name, stream.read()) == ("DUMP.SQL", b"S")
    # zipfile's own default (create_system 3, mode 0o600) and a Windows-made entry (mode 0).
    for info in (zipfile.ZipInfo("a.sql"), entry_info("b.sql", mode=0, dos=0x20)):
        path = zip_with(tmp_path / "plain.zip", [(info, b"SELECT 1;")])
        _, stream = open_sql_entry(path)
        stream.close()


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("a.sql", b"SELECT 1;"), ("b.sql", b"SELECT 2;")], "une seule entrée .sql"),
        ([], "une seule entrée .sql"),
        ([("../evil.sql", b"SELECT 1;")], "nom d'entrée non sûr: ../evil.sql"),
        ([("/abs.sql", b"SELECT 1;")], "nom d'entrée non sûr: /abs.sql"),
        ([("dir/x.sql", b"SELECT 1;")], "nom d'entrée non sûr: dir/x.sql"),
        ([("a\\b.sql", b"SELECT 1;")], "nom d'entrée non sûr"),
        ([("C:x.sql", b"SELECT 1;")], "nom d'entrée non sûr"),
        ([("x.sql/", b"")], "nom d'entrée non sûr"),
        ([("notes.txt", b"hello")], "n'est pas un fichier .sql: notes.txt"),
        ([("dump.sql.gz", b"hello")], "n'est pas un fichier .sql"),
        ([(entry_info("link.sql", mode=0o120777), b"/etc/passwd")], "pas un fichier ordinaire"),
        ([(entry_info("d.sql", mode=0o040755, dos=0x10), b"")], "pas un fichier ordinaire"),
        ([(entry_info("d.sql", mode=0, dos=0x10), b"")], "pas un fichier ordinaire"),
        ([(entry_info("fifo.sql", mode=0o010644), b"")], "pas un fichier ordinaire"),
        ([(entry_info("b.sql", method=zipfile.ZIP_BZIP2), b"x")], "non prise en charge"),
        ([(entry_info("l.sql", method=zipfile.ZIP_LZMA), b"x")], "non prise en charge"),
    ],
)
def test_reader_rejects_unsafe_archives(
    tmp_path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]], message: str
) -> None:
    path = zip_with(tmp_path / "bad.zip", entries)
    with pytest.raises(ArchiveError, match=f"^archive invalide: .*{message}"):
        open_sql_entry(path)


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "message"),
    [
        (8, "<H", 0x0001, "entrée chiffrée"),  # flag bit 0
        (8, "<H", 0x0040, "entrée chiffrée"),  # strong encryption
        (8, "<H", 0x0020, "non prise en charge"),  # compressed patched data
        (10, "<H", 99, "non prise en charge"),  # AES / unknown method
        (24, "<I", 0xFFFFFFF0, "tailles déclarées incohérentes"),  # 4 GiB from 1 KiB
    ],
)
def test_reader_rejects_forged_headers(
    tmp_path: Path, offset: int, fmt: str, value: int, message: str
) -> None:
    path = zip_with(tmp_path / "f.zip", [("f.sql", sql_like(1000))])
    patch_central(path, offset, fmt, value)
    with pytest.raises(ArchiveError, match=message):
        open_sql_entry(path)


def test_reader_rejects_stored_size_mismatch(tmp_path: Path) -> None:
    path = zip_with(tmp_path / "s.zip", [(entry_info("s.sql", method=zipfile.ZIP_STORED), b"ab")])
    patch_central(path, 24, "<I", 3)
    with pytest.raises(ArchiveError, match="tailles déclarées incohérentes"):
        open_sql_entry(path)


def test_reader_rejects_a_nul_in_the_name(tmp_path: Path) -> None:
    path = zip_with(tmp_path / "n.zip", [("evilN.sql", b"SELECT 1;")])
    path.write_bytes(path.read_bytes().replace(b"evilN.sql", b"evil\x00.sql"))
    with pytest.raises(ArchiveError, match=r"nom d'entrée non sûr: evil\\x00\.sql"):
        open_sql_entry(path)


@pytest.mark.parametrize(
    "content", [b"", b"-- just SQL\nSELECT 1;\n", b"PK\x05\x06" + bytes(10), b"PK" * 40]
)
def test_reader_rejects_what_is_not_a_zip(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "plain.zip"
    path.write_bytes(content)
    with pytest.raises(ArchiveError, match=r"^archive invalide: fichier ZIP illisible$"):
        open_sql_entry(path)


def test_missing_file_is_not_an_archive_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_sql_entry(tmp_path / "absent.zip")


def test_truncated_archive_is_rejected(tmp_path: Path) -> None:
    path = build(tmp_path / "t.zip", sql_like(2_000_000))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ArchiveError, match="illisible"):
        open_sql_entry(path)
    with pytest.raises(ArchiveError, match="illisible"):
        check_archive(path)


@pytest.mark.parametrize("compression", [Compression.ISAL, Compression.STORED])
def test_corrupted_data_raises_while_reading(tmp_path: Path, compression: Compression) -> None:
    data = sql_like(2_000_000)
    path = build(tmp_path / "c.zip", data, compression)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x55  # in the middle of the entry data
    path.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError, match=r"^archive corrompue: "):
        check_archive(path)
    name, stream = open_sql_entry(path)  # the headers are fine
    assert name == "dump.sql"
    with stream, pytest.raises(ArchiveError, match=r"^archive corrompue: "):  # noqa: PT012
        while stream.read(1 << 16):
            pass


def test_crc_mismatch_is_reported_in_french(tmp_path: Path) -> None:
    path = build(tmp_path / "crc.zip", sql_like(100_000))
    patch_central(path, 16, "<I", 0x12345678)
    _, stream = open_sql_entry(path)
    with stream, pytest.raises(ArchiveError, match=r"^archive corrompue: somme de contrôle CRC"):
        stream.read()
    with pytest.raises(ArchiveError, match="CRC-32 incorrecte"):
        check_archive(path)


def test_damaged_archives_only_ever_raise_archive_error(tmp_path: Path) -> None:
    """Every truncation and every single-byte corruption of a small archive: the reader
    either returns the exact content or raises ArchiveError, never anything else."""
    data = sql_like(3000)
    good = bytearray(build(tmp_path / "g.zip", data).read_bytes())
    path = tmp_path / "damaged.zip"
    variants: list[bytes] = [bytes(good[:cut]) for cut in range(len(good))]
    for position in range(len(good)):
        for mask in (0x01, 0x80, 0xFF):
            damaged = bytearray(good)
            damaged[position] ^= mask
            variants.append(bytes(damaged))
    outcomes = {"ok": 0, "rejected": 0}
    messages: set[str] = set()
    for variant in variants:
        path.write_bytes(variant)
        try:
            _, stream = open_sql_entry(path)
            with stream:
                content = stream.read()
            check_archive(path)
        except ArchiveError as exc:
            messages.add(str(exc))
            outcomes["rejected"] += 1
        else:
            assert content == data
            outcomes["ok"] += 1
    print(f"\n{len(variants)} damaged archives: {outcomes}")
    print("\n".join(f"  {message}" for message in sorted(messages)))
    assert outcomes["rejected"] > len(good)
    assert all(m.startswith(("archive invalide: ", "archive corrompue: ")) for m in messages)


def test_archive_check_passes_good_archives(tmp_path: Path) -> None:
    path = build(tmp_path / "good.zip", mixed_payload())
    check_archive(path)
    with path.open("rb") as handle:  # what the archive process is given
        check_archive(handle)
        assert not handle.closed


# ---------------------------------------------------------------------------- speed


def test_throughput_report() -> None:
    """Prints compression speed on ~100 MB of SQL-like text (no timed assertion)."""
    data = memoryview(sql_like(100_000_000))
    step = 1 << 20
    speeds: dict[str, float] = {}
    print(f"\nthroughput on {len(data) / 1e6:.0f} MB of SQL-like text, 1 MiB writes:")
    for compression, level in (
        (Compression.ISAL, 1),
        (Compression.ISAL, 3),
        (Compression.ZLIB, 1),
        (Compression.ZLIB, 6),
        (Compression.STORED, 0),
    ):
        sink = NullSink()
        began = time.perf_counter()
        cpu_began = time.process_time()
        writer = ZipStreamWriter(sink, "t.sql", compression=compression, level=level)
        for start in range(0, len(data), step):
            writer.write(data[start : start + step])
        result = writer.close()
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu_began
        ratio = result.size / len(data)
        key = f"{compression.value} {level}"
        speeds[key] = len(data) / elapsed / 1e6
        print(
            f"  {key:>8}: {speeds[key]:7.0f} MB/s wall, {len(data) / cpu / 1e6:7.0f} MB/s CPU, "
            f"ratio {ratio:.3f}"
        )
        assert result.size == sink.size
        if compression is not Compression.STORED:
            assert ratio < 0.5
    print(f"  isal 1 is {speeds['isal 1'] / speeds['zlib 6']:.1f}x zlib 6")


def test_an_unhashed_archive_is_the_same_archive_without_its_digest() -> None:
    """What an encrypted backup's writer does: the stored file is hashed where it leaves
    the age sink, so the ZIP itself is not hashed twice."""
    data = random.Random(7).randbytes(300_000)
    outputs = []
    for hashed in (True, False):
        out = io.BytesIO()
        writer = ZipStreamWriter(out, "a.sql", date_time=datetime(2026, 11, 28), hashed=hashed)
        writer.write(data)
        result = writer.close()
        outputs.append((out.getvalue(), result))
    (plain, result), (unhashed, unhashed_result) = outputs
    assert unhashed == plain
    assert result.sha256 == hashlib.sha256(plain).hexdigest()
    assert unhashed_result.sha256 == ""
    assert unhashed_result._replace(sha256=result.sha256) == result

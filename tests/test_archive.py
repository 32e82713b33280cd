"""The streaming ZIP writer and the validating reader, checked by zipfile and Info-ZIP."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest

from backup_api.archive import (
    ArchiveError,
    Compression,
    ZipStreamWriter,
    open_sql_entry,
    test_archive,
)


def sql_like(size: int) -> bytes:
    line = "INSERT INTO items VALUES ({0}, 'nom {0} l''été', '2024-01-01 00:{1:02d}:00', " + (
        '\'{{"k": {0}, "tags": ["a", "b"]}}\');\n'
    )
    out = io.StringIO()
    written = 0
    i = 0
    while written < size:
        text = line.format(i, i % 60)
        out.write(text)
        written += len(text)
        i += 1
    return out.getvalue().encode()[:size]


class WriteOnly:
    """A sink with nothing but ``write``: proves the writer never seeks or tells."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, data: bytes | memoryview) -> int:
        return self.buffer.write(data)


def build(
    path: Path, data: bytes, compression: Compression, level: int, chunks: list[int]
) -> object:
    sink = WriteOnly()
    writer = ZipStreamWriter(sink, "dump.sql", compression=compression, level=level)
    view = memoryview(data)
    position = 0
    for size in chunks:
        writer.write(view[position : position + size])
        position += size
        writer.write(b"")
    writer.write(view[position:])
    result = writer.close()
    path.write_bytes(sink.buffer.getvalue())
    return result


@pytest.mark.parametrize(
    ("compression", "level"),
    [(Compression.ISAL, 1), (Compression.ISAL, 3), (Compression.ZLIB, 6), (Compression.STORED, 0)],
)
def test_round_trip(tmp_path: Path, compression: Compression, level: int) -> None:
    data = sql_like(3_000_000) + os.urandom(200_000)
    path = tmp_path / "a.zip"
    result = build(path, data, compression, level, [1, 7, 65536, 1 << 20, 12345])
    raw = path.read_bytes()
    assert result.size == len(raw)  # type: ignore[attr-defined]
    assert result.sha256 == hashlib.sha256(raw).hexdigest()  # type: ignore[attr-defined]
    assert result.crc32 == zlib.crc32(data)  # type: ignore[attr-defined]
    assert result.uncompressed_size == len(data)  # type: ignore[attr-defined]
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == ["dump.sql"]
        assert archive.read("dump.sql") == data
    tested = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True, check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "warning" not in (tested.stdout + tested.stderr).lower()
    extracted = subprocess.run(["unzip", "-p", str(path)], capture_output=True, check=True)
    assert extracted.stdout == data
    name, stream = open_sql_entry(path)
    with stream:
        assert name == "dump.sql"
        assert stream.read() == data
    test_archive(path)


def test_compression_actually_compresses(tmp_path: Path) -> None:
    data = sql_like(2_000_000)
    isal = build(tmp_path / "i.zip", data, Compression.ISAL, 1, [])
    stored = build(tmp_path / "s.zip", data, Compression.STORED, 0, [])
    assert isal.size < stored.size / 3  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("compression", "level"),
    [(Compression.ISAL, 4), (Compression.ZLIB, 10), (Compression.ISAL, -1)],
)
def test_level_validation(compression: Compression, level: int) -> None:
    with pytest.raises(ValueError, match="compression level"):
        ZipStreamWriter(WriteOnly(), "x.sql", compression=compression, level=level)


@pytest.mark.parametrize(
    "name", ["", "../x.sql", "a/b.sql", "a\\b.sql", "x\x00.sql", "..", "é" * 200]
)
def test_entry_name_validation(name: str) -> None:
    with pytest.raises(ValueError, match="invalid archive entry name"):
        ZipStreamWriter(WriteOnly(), name)


def test_zip64_over_four_gib(tmp_path: Path) -> None:
    path = tmp_path / "big.zip"
    chunk = memoryview(bytes(8 << 20))
    total = (4 << 30) + (200 << 20)
    began = time.perf_counter()
    with path.open("wb") as handle:
        writer = ZipStreamWriter(handle, "big.sql", compression=Compression.ISAL, level=1)
        for _ in range(total // len(chunk)):
            writer.write(chunk)
        result = writer.close()
    elapsed = time.perf_counter() - began
    print(f"wrote {total / 2**30:.2f} GiB through the writer in {elapsed:.1f}s")
    assert result.uncompressed_size == total
    with zipfile.ZipFile(path) as archive:
        (info,) = archive.infolist()
        assert info.file_size == total
        assert result.crc32 == info.CRC
    tested = subprocess.run(
        ["unzip", "-tq", str(path)], capture_output=True, text=True, check=False
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_constant_memory(tmp_path: Path) -> None:
    block = memoryview(sql_like(1 << 20))
    tracemalloc.start()
    try:
        with (tmp_path / "m.zip").open("wb") as handle:
            writer = ZipStreamWriter(handle, "m.sql")
            for _ in range(200):
                writer.write(block)
            writer.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak Python allocation {peak / 2**20:.1f} MiB for 200 MiB written"


# ---------------------------------------------------------------------------- the reader


def zip_with(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return path


def symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o120777 << 16) | 0
    info.create_system = 3
    return info


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("a.sql", b"SELECT 1;"), ("b.sql", b"SELECT 2;")], "une seule entrée"),
        ([], "une seule entrée"),
        ([("../evil.sql", b"SELECT 1;")], "nom d'entrée non sûr"),
        ([("/abs.sql", b"SELECT 1;")], "nom d'entrée non sûr"),
        ([("dir/x.sql", b"SELECT 1;")], "nom d'entrée non sûr"),
        ([("notes.txt", b"hello")], "pas un fichier .sql"),
        ([(symlink_entry("link.sql"), b"/etc/passwd")], "pas un fichier ordinaire"),
    ],
)
def test_reader_rejects_unsafe_archives(
    tmp_path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]], message: str
) -> None:
    path = zip_with(tmp_path / "bad.zip", entries)
    with pytest.raises(ArchiveError, match=message):
        open_sql_entry(path)


def test_reader_rejects_a_non_zip(tmp_path: Path) -> None:
    path = tmp_path / "plain.zip"
    path.write_bytes(b"-- just SQL\nSELECT 1;\n")
    with pytest.raises(ArchiveError, match="illisible"):
        open_sql_entry(path)
    with pytest.raises(ArchiveError):
        test_archive(path)


def test_corruption_is_detected(tmp_path: Path) -> None:
    data = sql_like(2_000_000)
    path = tmp_path / "c.zip"
    build(path, data, Compression.ISAL, 1, [])
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x55
    path.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError, match="corrompue"):
        test_archive(path)
    with pytest.raises(ArchiveError, match="corrompue"):  # noqa: PT012
        _, stream = open_sql_entry(path)
        with stream:
            while stream.read(1 << 16):
                pass


def test_throughput_report(tmp_path: Path) -> None:
    """Prints compression speed (no timed assertion: that is the benchmark's job)."""
    data = memoryview(sql_like(50_000_000))
    for compression, level in ((Compression.ISAL, 1), (Compression.ZLIB, 6)):
        sink = WriteOnly()
        began = time.perf_counter()
        writer = ZipStreamWriter(sink, "t.sql", compression=compression, level=level)
        for start in range(0, len(data), 1 << 20):
            writer.write(data[start : start + (1 << 20)])
        result = writer.close()
        elapsed = time.perf_counter() - began
        ratio = result.size / len(data)
        print(
            f"{compression} level {level}: {len(data) / elapsed / 1e6:.0f} MB/s, ratio {ratio:.3f}"
        )
        assert ratio < 0.5

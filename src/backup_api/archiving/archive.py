"""Streaming ZIP archives: a sequential, constant-memory writer and a validating reader.

The writer never seeks, so it can feed any sink (a file, later an object-store upload) and
hash the exact bytes it emits. The single entry always uses a ZIP64 local header and a
data descriptor (general purpose flag bit 3): byte for byte what CPython's ``zipfile``
writes to an unseekable stream with ``force_zip64=True``. Dumps over 4 GiB work, and both
Info-ZIP ``unzip`` and ``zipfile`` read the result without warnings. Deflate comes from
ISA-L (``isal``) by default: its level 1 trades a somewhat larger archive for far less CPU
than zlib, and compression time is what a backup waits on. zlib and "stored" are the
alternatives.

The reader accepts only what the writer produces in spirit: one regular ``.sql`` file with
a plain name, stored or deflated, not encrypted. Its errors are French (shown to users).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import IO, TYPE_CHECKING, BinaryIO, Final, NamedTuple, Protocol

from isal import isal_zlib

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "ArchiveError",
    "ArchiveResult",
    "ArchiveSink",
    "Compression",
    "SqlEntryStream",
    "ZipStreamWriter",
    "check_entry_name",
    "open_sql_entry",
]

_Data = bytes | bytearray | memoryview


class Compression(StrEnum):
    ISAL = "isal"
    ZLIB = "zlib"
    STORED = "stored"


#: Accepted levels per engine; "stored" has no level (any value is ignored).
LEVELS: Final[dict[Compression, range]] = {
    Compression.ISAL: range(0, 4),
    Compression.ZLIB: range(0, 10),
}

# ---------------------------------------------------------------------------- ZIP format
# APPNOTE.TXT 4.3.7 (local header), 4.3.9 (data descriptor), 4.3.12 (central header),
# 4.3.14/4.3.15 (ZIP64 end record and locator), 4.3.16 (end record), 4.5.3 (ZIP64 extra).
_LOCAL_HEADER: Final = struct.Struct("<IHHHHHIIIHH")
_ZIP64_EXTRA_LOCAL: Final = struct.Struct("<HHQQ")
_DATA_DESCRIPTOR: Final = struct.Struct("<IIQQ")
_CENTRAL_HEADER: Final = struct.Struct("<IHHHHHHIIIHHHHHII")
_ZIP64_END: Final = struct.Struct("<IQHHIIQQQQ")
_ZIP64_LOCATOR: Final = struct.Struct("<IIQI")
_END: Final = struct.Struct("<IHHHHIIH")

_SIG_LOCAL: Final = 0x04034B50
_SIG_DESCRIPTOR: Final = 0x08074B50
_SIG_CENTRAL: Final = 0x02014B50
_SIG_ZIP64_END: Final = 0x06064B50
_SIG_ZIP64_LOCATOR: Final = 0x07064B50
_SIG_END: Final = 0x06054B50
_ZIP64_EXTRA_ID: Final = 0x0001

_VERSION_ZIP64: Final = 45  # 4.5: needed for ZIP64 (the local header always has it)
_UNIX: Final = 3  # "version made by" high byte: external attributes hold a Unix mode
_FLAG_ENCRYPTED: Final = 0x0001
_FLAG_DATA_DESCRIPTOR: Final = 0x0008
_FLAG_PATCHED: Final = 0x0020
_FLAG_STRONG_ENCRYPTION: Final = 0x0040
_FLAG_UTF8: Final = 0x0800
_FLAG_MASKED_HEADERS: Final = 0x2000
_MAX32: Final = 0xFFFFFFFF
_FILE_MODE: Final = stat.S_IFREG | 0o644
_DOS_DIRECTORY: Final = 0x10

_MAX_NAME_BYTES: Final = 255
# Outputs smaller than this are gathered and written together; larger ones go straight out.
_COALESCE: Final = 64 * 1024


def _is_plain_file_name(name: str) -> bool:
    """No directory part, no traversal, no drive, no control character, 1..255 bytes."""
    if not name or ".." in name or name == ".":
        return False
    if any(c in "/\\:" or ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return False
    try:
        return len(name.encode("utf-8")) <= _MAX_NAME_BYTES
    except UnicodeEncodeError:  # lone surrogates
        return False


def check_entry_name(name: str) -> str:
    """``name`` if it is a plain file name the reader will accept, else ``ValueError``."""
    if not _is_plain_file_name(name):
        raise ValueError(
            f"invalid archive entry name {name!r}: expected a plain file name of 1 to "
            f"{_MAX_NAME_BYTES} UTF-8 bytes without '/', '\\', ':', '..' or control characters"
        )
    return name


def _check_level(compression: Compression, level: int) -> None:
    allowed = LEVELS.get(compression)
    if allowed is None:  # stored: the level means nothing
        return
    if isinstance(level, bool) or not isinstance(level, int) or level not in allowed:
        raise ValueError(
            f"compression level {level!r} is out of range for {compression.value}: "
            f"expected an integer from {allowed.start} to {allowed.stop - 1}"
        )


def _dos_datetime(moment: datetime | None) -> tuple[int, int]:
    """MS-DOS (time, date) of ``moment``'s own fields, clamped to 1980..2107 like zipfile."""
    if moment is None:
        moment = datetime.now()
    fields = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
    if fields[0] < 1980:
        fields = (1980, 1, 1, 0, 0, 0)
    elif fields[0] > 2107:
        fields = (2107, 12, 31, 23, 59, 59)
    year, month, day, hour, minute, second = fields
    return (hour << 11) | (minute << 5) | (second // 2), ((year - 1980) << 9) | (month << 5) | day


class ArchiveSink(Protocol):
    """Where the archive bytes go, strictly in order; never seeked nor asked for a position.

    ``write`` must be done with ``data`` when it returns: it may be a view of a buffer the
    caller reuses (with the "stored" engine the caller's own chunks are passed through).
    If it returns an ``int`` smaller than ``len(data)`` (a raw file's short write), the
    rest is written again; any other return value means "all written".
    """

    def write(self, data: bytes | memoryview, /) -> object: ...


class _Compressor(Protocol):
    def compress(self, data: _Data, /) -> bytes: ...
    def flush(self) -> bytes: ...


class ArchiveResult(NamedTuple):
    size: int  # bytes of the whole archive written to the sink
    sha256: str  # hex digest of those bytes
    crc32: int  # of the uncompressed entry
    uncompressed_size: int
    compressed_size: int  # of the entry data alone (no headers)


class ZipStreamWriter:
    """Writes one entry into a ZIP archive, sequentially, in constant memory.

    Not thread-safe: one thread at a time (the dump worker, then ``close``) may use it.
    ``date_time`` fields are stored as given (DOS time has no time zone); default: now,
    local time. ``hashed=False`` skips the SHA-256 of the output (its result's ``sha256``
    is then empty).
    """

    def __init__(
        self,
        sink: ArchiveSink,
        entry_name: str,
        *,
        compression: Compression = Compression.ISAL,
        level: int = 1,
        date_time: datetime | None = None,
        hashed: bool = True,
    ) -> None:
        compression = Compression(compression)
        _check_level(compression, level)
        self._name = check_entry_name(entry_name).encode("utf-8")
        self._sink = sink
        # Not hashed when what is stored is not this archive (an encryption of it, hashed
        # where it leaves): ``sha256`` is then empty.
        self._hash = hashlib.sha256() if hashed else None
        self._crc32: Callable[[_Data, int], int]
        self._compressor: _Compressor | None
        if compression is Compression.ISAL:
            self._compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
            self._crc32 = isal_zlib.crc32
        elif compression is Compression.ZLIB:
            self._compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
            self._crc32 = zlib.crc32
        else:
            self._compressor = None
            self._crc32 = zlib.crc32
        self._method = zipfile.ZIP_STORED if self._compressor is None else zipfile.ZIP_DEFLATED
        self._flags = _FLAG_DATA_DESCRIPTOR | (0 if entry_name.isascii() else _FLAG_UTF8)
        self._dos_time, self._dos_date = _dos_datetime(date_time)
        self._crc = 0
        self._bytes_in = 0
        self._position = 0  # archive bytes produced (some may still wait in _pending)
        self._bytes_out = 0  # archive bytes handed to the sink
        self._pending = bytearray()
        self._failed = False
        self._result: ArchiveResult | None = None
        self._emit(self._local_header())  # buffered: leaves with the first data
        self._data_start = self._position

    @property
    def bytes_in(self) -> int:
        """Uncompressed bytes accepted so far."""
        return self._bytes_in

    @property
    def bytes_out(self) -> int:
        """Archive bytes written to the sink so far (up to 64 KiB may still be buffered)."""
        return self._bytes_out

    # ------------------------------------------------------------------ writing
    def write(self, data: _Data) -> None:
        """Compress ``data`` into the entry; the sink may receive nothing yet."""
        self._check_usable()
        if isinstance(data, memoryview) and (data.ndim != 1 or data.itemsize != 1):
            data = data.cast("B")
        size = len(data)
        if not size:
            return
        try:
            self._crc = self._crc32(data, self._crc)
            self._bytes_in += size
            if self._compressor is not None:
                self._emit(self._compressor.compress(data))
            else:  # stored: the caller's chunk itself, no copy
                self._emit(memoryview(data) if isinstance(data, bytearray) else data)
        except BaseException:
            self._failed = True  # the entry no longer matches its CRC or sizes
            raise

    def close(self) -> ArchiveResult:
        """Finish the entry and write the central directory; a second call returns the same."""
        if self._result is not None:
            return self._result
        self._check_usable()
        try:
            if self._compressor is not None:
                self._emit(self._compressor.flush())
                self._compressor = None
            compressed = self._position - self._data_start
            descriptor = _DATA_DESCRIPTOR.pack(
                _SIG_DESCRIPTOR, self._crc, compressed, self._bytes_in
            )
            self._emit(descriptor)
            central_offset = self._position
            central = self._central_header(compressed)
            self._emit(central + self._end_records(central_offset, len(central)))
            self._flush_pending()
        except BaseException:
            self._failed = True
            raise
        self._result = ArchiveResult(
            size=self._position,
            sha256="" if self._hash is None else self._hash.hexdigest(),
            crc32=self._crc,
            uncompressed_size=self._bytes_in,
            compressed_size=compressed,
        )
        return self._result

    def _check_usable(self) -> None:
        if self._failed:
            raise ValueError("ZIP writer failed earlier (sink or compressor error)")
        if self._result is not None:
            raise ValueError("ZIP writer already closed")

    def _emit(self, data: bytes | memoryview) -> None:
        """Queue small outputs, pass big ones straight to the sink (after the queue)."""
        size = len(data)
        if not size:
            return
        if size < _COALESCE:
            self._pending += data
            if len(self._pending) >= _COALESCE:
                self._flush_pending()
        else:
            self._flush_pending()
            self._deliver(data)
        self._position += size

    def _flush_pending(self) -> None:
        if self._pending:
            chunk = bytes(self._pending)
            self._pending.clear()
            self._deliver(chunk)

    def _deliver(self, data: bytes | memoryview) -> None:
        if self._hash is not None:
            self._hash.update(data)
        written = self._sink.write(data)
        if isinstance(written, int) and not isinstance(written, bool) and written < len(data):
            self._write_rest(memoryview(data), written)
        self._bytes_out += len(data)

    def _write_rest(self, view: memoryview, done: int) -> None:
        while done < len(view):
            written = self._sink.write(view[done:])
            if not isinstance(written, int) or isinstance(written, bool):
                return
            if written <= 0:
                raise OSError(f"archive sink accepted no bytes ({written!r})")
            done += written

    # ------------------------------------------------------------------ records
    def _local_header(self) -> bytes:
        # Sizes unknown yet: CRC and sizes 0 (they follow in the data descriptor), the
        # 32-bit sizes 0xFFFFFFFF pointing to a ZIP64 extra field with 0s (APPNOTE 4.4.4).
        extra = _ZIP64_EXTRA_LOCAL.pack(_ZIP64_EXTRA_ID, 16, 0, 0)
        header = _LOCAL_HEADER.pack(
            _SIG_LOCAL,
            _VERSION_ZIP64,
            self._flags,
            self._method,
            self._dos_time,
            self._dos_date,
            0,
            _MAX32,
            _MAX32,
            len(self._name),
            len(extra),
        )
        return header + self._name + extra

    def _central_header(self, compressed: int) -> bytes:
        # ZIP64 extra values appear only for the fields set to 0xFFFFFFFF, in this order
        # (APPNOTE 4.5.3). The local header is always at offset 0.
        zip64: list[int] = []
        file_size = self._bytes_in
        if file_size >= _MAX32:
            zip64.append(file_size)
            file_size = _MAX32
        compress_size = compressed
        if compress_size >= _MAX32:
            zip64.append(compress_size)
            compress_size = _MAX32
        extra = b""
        if zip64:
            extra = struct.pack(f"<HH{len(zip64)}Q", _ZIP64_EXTRA_ID, 8 * len(zip64), *zip64)
        header = _CENTRAL_HEADER.pack(
            _SIG_CENTRAL,
            (_UNIX << 8) | _VERSION_ZIP64,  # version made by
            _VERSION_ZIP64,  # version needed to extract
            self._flags,
            self._method,
            self._dos_time,
            self._dos_date,
            self._crc,
            compress_size,
            file_size,
            len(self._name),
            len(extra),
            0,  # comment length
            0,  # disk number start
            0,  # internal attributes
            _FILE_MODE << 16,  # external attributes: Unix mode in the high half
            0,  # offset of the local header
        )
        return header + self._name + extra

    @staticmethod
    def _end_records(central_offset: int, central_size: int) -> bytes:
        records = b""
        offset_field = central_offset
        if central_offset >= _MAX32:
            records += _ZIP64_END.pack(
                _SIG_ZIP64_END,
                _ZIP64_END.size - 12,  # size of the rest of this record
                (_UNIX << 8) | _VERSION_ZIP64,
                _VERSION_ZIP64,
                0,  # this disk
                0,  # disk with the central directory
                1,  # entries on this disk
                1,  # entries in total
                central_size,
                central_offset,
            )
            zip64_end_offset = central_offset + central_size
            records += _ZIP64_LOCATOR.pack(_SIG_ZIP64_LOCATOR, 0, zip64_end_offset, 1)
            offset_field = _MAX32
        records += _END.pack(_SIG_END, 0, 0, 1, 1, central_size, offset_field, 0)
        return records


# ---------------------------------------------------------------------------- reading


class ArchiveError(Exception):
    """An archive that cannot be trusted; the message is French, shown to API users."""


_READ_CHUNK: Final = 1 << 20
_MAX_DECLARED: Final = 1 << 44  # 16 TiB: anything larger is a forged header
_MAX_DEFLATE_RATIO: Final = 1032  # one 258-byte match in 2 bits at best (RFC 1951)
# What zipfile raises on malformed structures (UnicodeDecodeError is a ValueError).
_STRUCTURE_ERRORS: Final = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    struct.error,
    OverflowError,
)
# What reading a ZipExtFile raises on bad data (the CRC check raises BadZipFile at the end).
_DATA_ERRORS: Final = (zipfile.BadZipFile, zlib.error, EOFError)


def _is_malformed(exc: BaseException) -> bool:
    """Whether zipfile raised ``exc`` because of the archive's content, not the disk.

    A forged offset makes zipfile seek before the start of the file (EINVAL)."""
    if isinstance(exc, OSError):
        return exc.errno == errno.EINVAL
    return isinstance(exc, _STRUCTURE_ERRORS)


def _data_error(exc: BaseException) -> ArchiveError:
    """The French message for a failure while decompressing an entry."""
    if isinstance(exc, zlib.error):
        detail = "données compressées invalides"
    elif isinstance(exc, EOFError):
        detail = "données compressées tronquées"
    elif isinstance(exc, zipfile.BadZipFile) and "CRC" in str(exc):
        detail = "somme de contrôle CRC-32 incorrecte"
    elif isinstance(exc, NotImplementedError):
        detail = "méthode de compression non prise en charge"
    elif isinstance(exc, RuntimeError):
        detail = "entrée chiffrée"
    else:
        detail = "structure ZIP invalide"
    return ArchiveError(f"archive corrompue: {detail}")


class SqlEntryStream(io.BufferedIOBase):
    """The decompressed SQL of an archive; closing it closes the archive too.

    Decompression errors (corrupt data, CRC mismatch at the end) raise ``ArchiveError``.
    """

    def __init__(self, archive: zipfile.ZipFile, entry: IO[bytes], name: str) -> None:
        super().__init__()
        self._archive = archive
        self._entry = entry
        self.name = name

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        try:
            return self._entry.read(-1 if size is None else size)
        except (*_DATA_ERRORS, OSError) as exc:
            if isinstance(exc, OSError) and not _is_malformed(exc):
                raise
            raise _data_error(exc) from None

    def read1(self, size: int = -1, /) -> bytes:
        return self.read(size)

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._entry.close()
        finally:
            try:
                self._archive.close()
            finally:
                super().close()


def _shown(name: str) -> str:
    """``name`` for a message: control characters escaped, at most 100 characters."""
    text = repr(name)[1:-1]
    return text if len(text) <= 100 else text[:99] + "…"


def _open_zip(source: str | os.PathLike[str] | BinaryIO, prefix: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source)
    except (*_STRUCTURE_ERRORS, OSError) as exc:
        if not _is_malformed(exc):
            raise
        raise ArchiveError(f"{prefix}: fichier ZIP illisible") from None


def _validate(archive: zipfile.ZipFile) -> zipfile.ZipInfo:
    entries = archive.infolist()
    if len(entries) != 1:
        raise ArchiveError("archive invalide: l'archive doit contenir une seule entrée .sql")
    info = entries[0]
    name = info.orig_filename  # before zipfile cuts it at a NUL
    if not _is_plain_file_name(name):
        raise ArchiveError(f"archive invalide: nom d'entrée non sûr: {_shown(name)}")
    if not name.lower().endswith(".sql"):
        raise ArchiveError(f"archive invalide: l'entrée n'est pas un fichier .sql: {_shown(name)}")
    # The high half holds a Unix mode; zipfile's writestr leaves the file type bits 0.
    file_type = stat.S_IFMT(info.external_attr >> 16)
    is_dos_directory = bool(info.external_attr & _DOS_DIRECTORY)
    if info.is_dir() or is_dos_directory or file_type not in (0, stat.S_IFREG):
        raise ArchiveError(
            f"archive invalide: l'entrée n'est pas un fichier ordinaire: {_shown(name)}"
        )
    if info.flag_bits & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION | _FLAG_MASKED_HEADERS):
        raise ArchiveError("archive invalide: entrée chiffrée")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or (
        info.flag_bits & _FLAG_PATCHED
    ):
        raise ArchiveError("archive invalide: méthode de compression non prise en charge")
    if info.file_size > _MAX_DECLARED:
        raise ArchiveError("archive invalide: taille déclarée aberrante")
    coherent = (
        info.file_size == info.compress_size
        if info.compress_type == zipfile.ZIP_STORED
        else info.file_size <= info.compress_size * _MAX_DEFLATE_RATIO + 1024
    )
    if not coherent:
        raise ArchiveError("archive invalide: tailles déclarées incohérentes")
    return info


def open_sql_entry(source: str | os.PathLike[str] | BinaryIO) -> tuple[str, SqlEntryStream]:
    """Validate the archive (one plain ``.sql`` entry, nothing else) and stream its SQL.

    ``source`` is a path or a seekable binary file (left open: the caller owns it). The
    returned stream must be closed; it closes the archive with it.
    """
    archive = _open_zip(source, "archive invalide")
    try:
        info = _validate(archive)
        entry = archive.open(info)
    except BaseException as exc:
        archive.close()
        if _is_malformed(exc):
            raise _data_error(exc) from None
        raise
    return info.orig_filename, SqlEntryStream(archive, entry, info.orig_filename)

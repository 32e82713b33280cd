"""Small servers speaking just enough of the real wire protocols to stand where a
database server (or some other service) would, and to record what clients send them."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter, "Recorder"], Coroutine[Any, Any, None]
]


@dataclass
class Recorder:
    """Everything the server received, connection by connection."""

    port: int = 0
    connections: list[bytearray] = field(default_factory=list)
    passwords: list[bytes] = field(default_factory=list)

    @property
    def received(self) -> bytes:
        return b"".join(bytes(c) for c in self.connections)


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[Recorder]:
    recorder = Recorder()
    tasks: set[asyncio.Task[None]] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        recorder.connections.append(bytearray())
        try:
            await handler(_RecordingReader(reader, recorder.connections[-1]), writer, recorder)  # type: ignore[arg-type]
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            tasks.discard(task)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    recorder.port = server.sockets[0].getsockname()[1]
    try:
        yield recorder
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await server.wait_closed()


class _RecordingReader:
    def __init__(self, reader: asyncio.StreamReader, sink: bytearray) -> None:
        self._reader = reader
        self._sink = sink

    async def readexactly(self, count: int) -> bytes:
        data = await self._reader.readexactly(count)
        self._sink += data
        return data

    async def read(self, count: int) -> bytes:
        data = await self._reader.read(count)
        self._sink += data
        return data


# ---------------------------------------------------------------------------- PostgreSQL


def _pg_message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


async def pg_cleartext(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, recorder: Recorder
) -> None:
    """Declines TLS, asks for the password in clear (AuthenticationCleartextPassword),
    records it and refuses it as a real server would."""
    while True:
        length = struct.unpack("!I", await reader.readexactly(4))[0]
        body = await reader.readexactly(length - 4)
        code = struct.unpack("!I", body[:4])[0]
        if code in (80877103, 80877104):  # SSLRequest, GSSENCRequest
            writer.write(b"N")
            await writer.drain()
            continue
        break
    writer.write(_pg_message(b"R", struct.pack("!I", 3)))
    await writer.drain()
    kind = await reader.readexactly(1)
    length = struct.unpack("!I", await reader.readexactly(4))[0]
    body = await reader.readexactly(length - 4)
    if kind == b"p":
        recorder.passwords.append(body.rstrip(b"\0"))
    error = b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user\0\0"
    writer.write(_pg_message(b"E", error))
    await writer.drain()


# ---------------------------------------------------------------------------- MySQL


def _my_packet(sequence: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([sequence]) + payload


async def _my_read(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    header = await reader.readexactly(4)
    return header[3], await reader.readexactly(int.from_bytes(header[:3], "little"))


def _my_greeting() -> bytes:
    # LONG_PASSWORD, FOUND_ROWS, LONG_FLAG, CONNECT_WITH_DB, PROTOCOL_41, TRANSACTIONS,
    # SECURE_CONNECTION; then MULTI_STATEMENTS, MULTI_RESULTS, PLUGIN_AUTH.
    lower, upper = 0xA20F, 0x000B
    return (
        b"\x0a" + b"5.5.5-10.11.0-MariaDB-fake\0"
        + struct.pack("<I", 7) + b"abcdefgh" + b"\0"
        + struct.pack("<H", lower) + bytes([45]) + struct.pack("<H", 2)
        + struct.pack("<H", upper) + bytes([21]) + bytes(10)
        + b"ijklmnopqrst\0" + b"mysql_native_password\0"
    )  # fmt: skip


def _my_error(sequence: int, code: int, message: bytes) -> bytes:
    return _my_packet(sequence, b"\xff" + struct.pack("<H", code) + b"#28000" + message)


async def mysql_clear_switch(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, recorder: Recorder
) -> None:
    """Greets as MariaDB, then switches the client to ``mysql_clear_password`` and records
    whatever comes back before refusing it."""
    writer.write(_my_packet(0, _my_greeting()))
    await writer.drain()
    sequence, _ = await _my_read(reader)
    writer.write(_my_packet(sequence + 1, b"\xfe" + b"mysql_clear_password\0"))
    await writer.drain()
    try:
        sequence, answer = await asyncio.wait_for(_my_read(reader), 10)
    except (asyncio.IncompleteReadError, TimeoutError):
        return  # the client would not answer in clear: it hung up
    recorder.passwords.append(answer.rstrip(b"\0"))
    writer.write(_my_error(sequence + 1, 1045, b"Access denied"))
    await writer.drain()


async def mysql_accept_all(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, recorder: Recorder
) -> None:
    """Lets anyone in with any password, as a server run with --skip-grant-tables does."""
    writer.write(_my_packet(0, _my_greeting()))
    await writer.drain()
    sequence, _ = await _my_read(reader)
    writer.write(_my_packet(sequence + 1, b"\x00\x00\x00\x02\x00\x00\x00"))
    await writer.drain()
    with contextlib.suppress(asyncio.IncompleteReadError, TimeoutError):
        await asyncio.wait_for(_my_read(reader), 5)


# ---------------------------------------------------------------------------- others


async def ssh_banner(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, recorder: Recorder
) -> None:
    """Not a database: an SSH server's first words, then it waits for the client's."""
    writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
    await writer.drain()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader.read(4096), 5)

"""The dump read-ahead, on real pipes: order, bounds, and what happens when either side fails."""

from __future__ import annotations

import os
import threading
import time

import pytest

from backup_api.archiving.readahead import PipeReadAhead

CHUNK = 64 * 1024


class Writer:
    """A thread writing ``payload`` into a new pipe, like a dump tool; ``fd`` is the read end."""

    def __init__(self, payload: bytes) -> None:
        self.fd, write_fd = os.pipe()
        self.done = threading.Event()
        self.errors: list[BaseException] = []
        threading.Thread(target=self._run, args=(write_fd, payload), daemon=True).start()

    def _run(self, fd: int, payload: bytes) -> None:
        try:
            with open(fd, "wb", buffering=0) as pipe:
                view = memoryview(payload)
                # Irregular write sizes, so reads come back in every size.
                sizes = [1, 7000, CHUNK, 3 * CHUNK + 5, 12345]
                position = index = 0
                while position < len(view):
                    size = sizes[index % len(sizes)]
                    pipe.write(view[position : position + size])
                    position += size
                    index += 1
        except BaseException as exc:  # collected for the test to assert on
            self.errors.append(exc)
        finally:
            self.done.set()


def test_delivers_every_byte_in_order() -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    writer = Writer(payload)
    counted: list[int] = []
    received = bytearray()
    with PipeReadAhead(writer.fd, chunk_size=CHUNK, max_chunks=4, on_read=counted.append) as ahead:
        for chunk in ahead:
            received += chunk
    assert bytes(received) == payload
    assert sum(counted) == len(payload)
    assert not writer.errors
    assert ahead.peak_buffers <= 4
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(writer.fd)  # closed by the read-ahead


def test_the_writer_does_not_wait_for_a_slow_consumer() -> None:
    # 2 MiB fits in the read-ahead (4 MiB) but not in a pipe: without read-ahead the
    # writer would block until the consumer starts reading.
    payload = os.urandom(2 * 1024 * 1024)
    writer = Writer(payload)
    received = bytearray()
    with PipeReadAhead(writer.fd, chunk_size=CHUNK, max_chunks=64, on_read=lambda _: None) as ahead:
        assert writer.done.wait(10), "the writer was held up by the consumer"
        for chunk in ahead:
            received += chunk
    assert bytes(received) == payload
    assert not writer.errors


def test_memory_stays_bounded_when_the_consumer_lags() -> None:
    payload = os.urandom(4 * 1024 * 1024)
    writer = Writer(payload)
    received = bytearray()
    with PipeReadAhead(writer.fd, chunk_size=CHUNK, max_chunks=3, on_read=lambda _: None) as ahead:
        time.sleep(0.2)  # the drain fills its 3 buffers and must then wait
        assert not writer.done.is_set()
        for chunk in ahead:
            received += chunk
            time.sleep(0.001)
    assert bytes(received) == payload
    assert ahead.peak_buffers == 3


def test_a_consumer_error_closes_the_pipe_and_frees_the_writer() -> None:
    # Endless output, like a dump that the service stops reading.
    writer = Writer(os.urandom(64 * 1024 * 1024))

    def consume_and_fail() -> None:
        with PipeReadAhead(writer.fd, chunk_size=CHUNK, max_chunks=2, on_read=lambda _: None) as a:
            for _ in a:
                raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        consume_and_fail()
    # The drain thread stops after its current read and closes the pipe: the writer gets
    # EPIPE instead of blocking forever.
    assert writer.done.wait(10)
    assert len(writer.errors) == 1
    assert isinstance(writer.errors[0], BrokenPipeError)


def test_a_read_error_reaches_the_consumer() -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    # Reading the write end of a pipe fails (EBADF): the consumer sees the error.

    def consume() -> None:
        with PipeReadAhead(write_fd, chunk_size=CHUNK, max_chunks=2, on_read=lambda _: None) as a:
            for _ in a:
                pass

    with pytest.raises(OSError, match="Bad file descriptor"):
        consume()


def test_rejects_an_empty_pool() -> None:
    read_fd, write_fd = os.pipe()
    try:
        with pytest.raises(ValueError, match="must be positive"):
            PipeReadAhead(read_fd, chunk_size=CHUNK, max_chunks=0, on_read=lambda _: None)
    finally:
        os.close(read_fd)
        os.close(write_fd)

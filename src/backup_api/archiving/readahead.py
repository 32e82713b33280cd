"""Read-ahead for a dump tool's stdout: a thread drains the pipe into a bounded pool of
buffers, so the tool never waits while its output is being compressed.

Why: on a machine whose cores are already busy with the dump tool and its database
server, the compressing thread is sometimes off-CPU for a few milliseconds. A 1 MiB pipe
fills in that time and the tool blocks, and with it the server feeding it: a core sits
idle. Draining is cheap (a copy), so a drain thread that keeps the pipe empty lets the
compressor catch up later instead, and the tool and its server keep their pace.

Memory stays bounded: at most ``max_chunks`` buffers of ``chunk_size`` bytes exist, and
they are reused most-recently-freed first, so a compressor that keeps up touches only a
few of them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from types import TracebackType

__all__ = ["PipeReadAhead"]


class PipeReadAhead:
    """Iterate over what ``fd`` delivers, read ahead by a drain thread.

    Owns ``fd`` and closes it. Each chunk yielded is a memoryview valid until the next
    iteration step. ``on_read(count)`` is called from the drain thread for each read (the
    tool's activity, as the supervisor sees it). Use as a context manager: leaving it
    early (an error while compressing) tells the drain thread to stop, and the thread
    closes the pipe after its current read, so the tool gets EPIPE instead of blocking.
    """

    def __init__(
        self,
        fd: int,
        *,
        chunk_size: int,
        max_chunks: int,
        on_read: Callable[[int], None],
    ) -> None:
        if chunk_size <= 0 or max_chunks <= 0:
            raise ValueError("chunk_size and max_chunks must be positive")
        # Opened here, so the fd is owned (and closed by the drain thread) from now on.
        self._pipe = open(fd, "rb", buffering=0, closefd=True)  # noqa: SIM115
        self._chunk_size = chunk_size
        self._max_chunks = max_chunks
        self._on_read = on_read
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._free: list[bytearray] = []  # a stack: warm buffers first
        self._allocated = 0
        self._filled: deque[tuple[bytearray, int]] = deque()
        self._eof = False
        self._error: BaseException | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._drain, name="dump-readahead", daemon=True)

    # ------------------------------------------------------------------ consumer side
    def __enter__(self) -> PipeReadAhead:
        try:
            self._thread.start()
        except BaseException:
            self._pipe.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._changed:
            self._stopped = True
            self._filled.clear()
            self._changed.notify_all()
        if self._eof or self._error is not None:
            # The pipe reached its end: the thread has nothing left to wait for.
            self._thread.join()
        # Otherwise the thread may be blocked in read(); it closes the pipe as soon as the
        # tool writes again or is killed (the supervisor kills it on worker errors).

    def __iter__(self) -> Iterator[memoryview]:
        current: bytearray | None = None
        while True:
            with self._changed:
                if current is not None:
                    self._free.append(current)
                    current = None
                    self._changed.notify_all()
                while not self._filled and not self._eof and self._error is None:
                    self._changed.wait()
                if self._filled:
                    current, count = self._filled.popleft()
                elif self._error is not None:
                    raise self._error
                else:
                    return
            yield memoryview(current)[:count]

    @property
    def peak_buffers(self) -> int:
        """How many buffers were ever allocated (for tests and measurements)."""
        return self._allocated

    # ------------------------------------------------------------------ drain thread
    def _take_buffer(self) -> bytearray | None:
        with self._changed:
            while not self._free and self._allocated >= self._max_chunks and not self._stopped:
                self._changed.wait()
            if self._stopped:
                return None
            if self._free:
                return self._free.pop()
            self._allocated += 1
        return bytearray(self._chunk_size)

    def _drain(self) -> None:
        try:
            with self._pipe as pipe:
                while (buffer := self._take_buffer()) is not None:
                    count = pipe.readinto(buffer)
                    if count:
                        self._on_read(count)
                    with self._changed:
                        if self._stopped:
                            return
                        if not count:
                            self._eof = True
                        else:
                            self._filled.append((buffer, count))
                        self._changed.notify_all()
                    if not count:
                        return
        except BaseException as exc:
            with self._changed:
                self._error = exc
                self._changed.notify_all()

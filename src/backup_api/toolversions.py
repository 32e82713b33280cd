"""Which dump tools are installed, and at which version (for the health report)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor

from backup_api.models import ToolStatus

__all__ = ["ToolVersions"]

PROBE_TIMEOUT = 5.0
# Debian's pg_dump is a wrapper script that runs the newest installed client: installing
# another major version changes the tool without touching the file. Answers are renewed
# after this long whatever the file says.
MAX_AGE = 60.0

# What identifies one binary: where the name resolves, and the file there (an upgrade in
# place gives a new inode, size or modification time).
_Identity = tuple[str, int, int, int, int]


class ToolVersions:
    """Which dump tools are installed and at which version, asked once per binary.

    Asking means starting ``pg_dump --version`` and the like: four processes per health
    check, each costing the service CPU to start, on a route open to anyone, so clients
    polling ``/health`` could keep a core busy. The answer only changes when a binary does,
    so it is kept per command together with the binary's identity, which a check re-reads
    (a few ``stat`` calls): a tool installed, removed or upgraded is seen at once, and any
    answer is renewed after ``max_age`` seconds. Concurrent checks of an unknown binary
    share one probe; a probe that could not run (timeout, no process slot) is not kept.
    """

    def __init__(
        self,
        executor: Executor,
        env: Mapping[str, str],
        *,
        timeout: float = PROBE_TIMEOUT,
        max_age: float = MAX_AGE,
    ) -> None:
        self._executor = executor
        self._env = dict(env)
        self._timeout = timeout
        self._max_age = max_age
        # command -> (binary identity, when it was asked, the answer)
        self._known: dict[tuple[str, ...], tuple[_Identity, float, ToolStatus]] = {}
        self._probes: dict[tuple[tuple[str, ...], _Identity], asyncio.Future[ToolStatus]] = {}

    async def status(self, argv: Sequence[str]) -> ToolStatus:
        command = tuple(argv)
        path = shutil.which(command[0])
        if path is None:
            return ToolStatus(available=False, path=None, version=None)
        try:
            info = os.stat(path)
        except OSError:
            return ToolStatus(available=False, path=path, version=None)
        identity = (path, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        known = self._known.get(command)
        if (
            known is not None
            and known[0] == identity
            and time.monotonic() - known[1] < self._max_age
        ):
            return known[2]
        key = (command, identity)
        probe = self._probes.get(key)
        if probe is None:
            probe = asyncio.ensure_future(self._probe(command, identity))
            self._probes[key] = probe
            probe.add_done_callback(lambda _: self._probes.pop(key, None))
        # Shielded: one caller going away must not cancel the others' answer.
        return await asyncio.shield(probe)

    async def _probe(self, command: tuple[str, ...], identity: _Identity) -> ToolStatus:
        path = identity[0]
        asked = time.monotonic()
        loop = asyncio.get_running_loop()
        # Started from a worker thread: starting a process from the event loop's blocks
        # every request in flight meanwhile.
        try:
            result = await loop.run_in_executor(
                self._executor,
                lambda: subprocess.run(
                    [path, *command[1:]],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    env=self._env,
                    timeout=self._timeout,
                    check=False,
                ),
            )
        except (OSError, subprocess.TimeoutExpired):
            return ToolStatus(available=False, path=path, version=None)
        lines = result.stdout.decode("utf-8", "replace").strip().splitlines()
        status = ToolStatus(
            available=result.returncode == 0, path=path, version=lines[0] if lines else None
        )
        self._known[command] = (identity, asked, status)
        return status

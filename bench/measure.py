"""What the benchmark measures besides wall time: busy CPU, the cores' steadiness, the
service's peak memory, and percentiles."""

from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psutil

T = TypeVar("T")


class BusyCpu:
    """CPU seconds the whole machine spent busy (every process) between start and stop.

    The bare dump's own processes (tool and database server) already keep the cores busy;
    this shows how much room is left, and how much the service adds, in the same run.
    """

    @staticmethod
    def now() -> float:
        # The busy fields only: on Linux "guest" time is already inside "user" (summing
        # every field counted it twice), and "steal" is time the hypervisor gave to others.
        times = psutil.cpu_times()
        busy = ("user", "nice", "system", "irq", "softirq")
        return float(sum(getattr(times, name, 0.0) for name in busy))

    def __init__(self) -> None:
        self.samples: list[float] = []

    def measure(self, work: Callable[[], T]) -> T:
        began = self.now()
        result = work()
        self.samples.append(self.now() - began)
        return result

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


class CpuSteadiness:
    """Times the same pure-CPU loop between measurements, with nothing else running.

    On a virtual machine whose host is busy, a core's speed changes from one second to
    the next; every ratio in the report is only as steady as this.
    """

    def __init__(self) -> None:
        self.samples: list[float] = []

    def probe(self) -> None:
        began = time.perf_counter()
        total = 0
        for value in range(2_000_000):
            total += value
        self.samples.append(time.perf_counter() - began)

    def line(self) -> str:
        low, high = min(self.samples), max(self.samples)
        return (
            f"- CPU steadiness: the same pure-Python loop, timed {len(self.samples)} times "
            f"between measurements with nothing else running, took {low * 1e3:.0f} to "
            f"{high * 1e3:.0f} ms (median {statistics.median(self.samples) * 1e3:.0f} ms, "
            f"spread {high / low - 1:.0%}): the cores' speed varies that much during the run"
        )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def service_rss(service: psutil.Process, children: list[psutil.Process]) -> int:
    total = service.memory_info().rss
    for child in children:
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total


ARCHIVE_MODULE = "backup_api.archiving.child"
UPLOAD_MODULE = "backup_api.storage.s3.uploader"
#: The processes a backup runs beside the service, whose memory is the service's: the
#: archive processes (the one at work and the one waiting for the next job) and, for
#: backups to S3, the upload process.
HELPER_MODULES = (ARCHIVE_MODULE, UPLOAD_MODULE)


def helper_processes(service: psutil.Process) -> list[tuple[psutil.Process, str]]:
    """The service's children that run one of ``HELPER_MODULES``, each with its module."""
    found = []
    for child in service.children():
        with contextlib.suppress(psutil.Error):
            cmdline = child.cmdline()
            found += [(child, module) for module in HELPER_MODULES if module in cmdline]
    return found


def archive_processes(service: psutil.Process) -> list[psutil.Process]:
    return [child for child, _ in helper_processes(service)]


class RssSampler(threading.Thread):
    """Peak RSS of the service plus the processes it runs for backups (``HELPER_MODULES``):
    they do the compression and the uploads out of the service's process, and so count as
    its memory. The upload process's own peak is kept too: where the memory of a backup
    to S3 goes."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.upload_peak = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        # The benchmark's own poller yields to everything else on the cores: the service,
        # its tools and their servers (a thread of Linux is a task of its own, niced alone;
        # this one starts no process that would inherit it).
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        children: list[tuple[psutil.Process, str]] = []
        next_scan = 0.0
        while not self.stop_event.is_set():
            now = time.monotonic()
            if now >= next_scan:
                # Listing children reads every process's stat: a few ms, so not every time.
                children = helper_processes(self.process)
                next_scan = now + 0.2
            try:
                total = self.process.memory_info().rss
            except psutil.Error:
                return
            for child, module in children:
                with contextlib.suppress(psutil.Error):
                    rss = child.memory_info().rss
                    total += rss
                    if module == UPLOAD_MODULE:
                        self.upload_peak = max(self.upload_peak, rss)
            self.peak = max(self.peak, total)
            time.sleep(0.02)

    def stop(self) -> int:
        self.stop_event.set()
        self.join()
        return self.peak

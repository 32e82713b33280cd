"""Process markers: every process a job starts carries one in its environment, naming the
job and this service instance, so a restart after a crash finds and kills what was left.

A marker ends with the instance's suffix (its backup root), so two instances on one host
never kill each other's processes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from backup_api.config import Settings

JOB_MARKER_ENV = "BACKUP_API_JOB"
SETTINGS_ENV_PREFIX = "BACKUP_API_"


def instance_suffix(settings: Settings) -> str:
    """What ends every marker of this instance: its backup root."""
    return "@" + str(settings.backup_root.resolve())


def marker(name: str, settings: Settings) -> str:
    """The marker of ``name`` (a job such as ``backup:12``, or a helper's role)."""
    return name + instance_suffix(settings)


def child_env(extra: Mapping[str, str], marker: str) -> dict[str, str]:
    """The service's environment with ``extra`` applied and the job ``marker`` set.

    The service's own settings (``BACKUP_API_*``: the encryption key, the JWT secret, the
    metadata database's URL with its password) stay behind: no child needs them.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_ENV_PREFIX)}
    for key, value in extra.items():
        # An empty value means "must not be inherited from the service's environment".
        if value == "":
            env.pop(key, None)
        else:
            env[key] = value
    env[JOB_MARKER_ENV] = marker
    return env


def kill_orphans(suffix: str) -> int:
    """Kill the processes whose marker ends with ``suffix`` (a crashed instance's, with
    the same backup root, left them running); how many were killed."""
    killed = 0
    own = os.getpid()
    prefix = JOB_MARKER_ENV.encode() + b"="
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        for item in environ.split(b"\0"):
            if item.startswith(prefix) and item.endswith(suffix.encode()):
                try:
                    os.kill(int(entry.name), 9)
                    killed += 1
                except OSError:
                    pass
                break
    return killed

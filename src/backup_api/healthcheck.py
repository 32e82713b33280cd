"""Container health probe: ``python -m backup_api.healthcheck`` exits 0 when the service on
this host answers ``GET /health`` with 200, 1 otherwise.

Standard library only and no settings parsing: a probe runs every few seconds and must
cost next to nothing.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

# Where a wildcard listen address is reached from the same host.
_LOCAL = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def health_url(environ: Mapping[str, str] = os.environ) -> str:
    host = environ.get("BACKUP_API_HOST", "127.0.0.1")
    host = _LOCAL.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{environ.get('BACKUP_API_PORT', '3000')}/health"


def main() -> int:
    # No proxy from the environment: the probe asks this host, never a middleman.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(health_url(), timeout=5) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Where one bucket is and how to reach it: everything a client needs, as one value that
the service sends to the upload process over a socket (never in argv or the environment)."""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import urlsplit

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_MAX_ATTEMPTS = 3


class S3Location(NamedTuple):
    # A NamedTuple (not a dataclass): the upload process imports this module and starts fast.
    endpoint: str
    region: str
    bucket: str
    prefix: str
    access_key_id: str
    secret_access_key: str
    path_style: bool = True
    object_lock_days: int | None = None
    #: Connect to this address and check TLS against the endpoint's name; None: resolve the
    #: name at connection time.
    pinned_address: str | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    #: Attempts per request, the first included (botocore's "standard" retries).
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint).hostname or ""

    @property
    def unsigned(self) -> bool:
        """Empty keys: anonymous requests, never credentials found elsewhere."""
        return not self.access_key_id and not self.secret_access_key

    def to_json(self) -> dict[str, Any]:
        return self._asdict()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> S3Location:
        return cls(**{name: data[name] for name in cls._fields if name in data})

    def __repr__(self) -> str:
        # The secret never reaches a log line or a traceback through repr().
        shown = self._replace(secret_access_key="***" if self.secret_access_key else "")
        return "S3Location" + repr(tuple(shown))

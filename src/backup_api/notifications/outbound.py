"""One outbound HTTP request to a URL a user chose (a webhook, a heartbeat), under the
outbound rule: the host resolved once and checked (non-admins reach public addresses
only, unless ``allowed_outbound_hosts`` lists them), the connection made to that very
address with the name as Host header and TLS server name, no redirect followed, a
deadline, and errors in French that never repeat the URL (it may carry a token)."""

from __future__ import annotations

import ipaddress
import logging
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from backup_api.netpolicy import HostNotAllowedError, outbound_allowed_among, resolve_addresses

_DEFAULT_PORTS = {"http": 80, "https": 443}

# httpx logs each request's URL at INFO (and httpcore its steps at DEBUG): these URLs carry
# tokens, so those lines never reach the service's log, whatever its level.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)
USER_AGENT = "backup-api"


@dataclass(frozen=True)
class Outcome:
    """What an attempt got: the receiver's status, or why there was none."""

    status_code: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def mask_url(url: str) -> str:
    """The URL as shown back: scheme and host (and port) only; path, query and any
    credentials are what carries tokens."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "***"
    if ":" in host:
        host = f"[{host}]"
    where = f"{host}:{port}" if port else host
    return f"{parts.scheme}://{where}/***"


@dataclass(frozen=True)
class PinnedTarget:
    """The request's URL rewritten to the checked address, and the name it stands for."""

    url: str
    host_header: str
    server_name: str | None


async def pin(url: str, *, owner_is_admin: bool, allowed: list[str]) -> PinnedTarget:
    """Resolve ``url``'s host once and apply the outbound rule; ``HostNotAllowedError``
    (French, naming the host only) when it refuses."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in _DEFAULT_PORTS or not host:
        raise HostNotAllowedError("URL invalide (http ou https attendu, avec un hôte)")
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    addresses = await resolve_addresses(host, port)
    if not owner_is_admin:
        addresses = outbound_allowed_among(host, addresses, allowed)
    address = addresses[0]
    literal = f"[{address}]" if ":" in address else address
    pinned = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
    # The Host header as the URL wrote it (name and explicit port), credentials never.
    shown_host = f"[{host}]" if ":" in host else host
    host_header = f"{shown_host}:{parts.port}" if parts.port else shown_host
    is_name = not _is_address(host)
    server_name = host if parts.scheme == "https" and is_name else None
    return PinnedTarget(url=pinned, host_header=host_header, server_name=server_name)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


_TLS = ssl.create_default_context()


def _caused_by_tls(error: BaseException) -> bool:
    # httpx wraps httpcore's error, which wraps the ssl module's.
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def request(
    method: str,
    url: str,
    *,
    owner_is_admin: bool,
    allowed: list[str],
    deadline: float,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> Outcome:
    """One request, its status, or why it failed (the URL never in the message)."""
    try:
        target = await pin(url, owner_is_admin=owner_is_admin, allowed=allowed)
    except HostNotAllowedError as exc:
        return Outcome(error=str(exc))
    sent_headers = {"User-Agent": USER_AGENT, **(headers or {}), "Host": target.host_header}
    extensions = {} if target.server_name is None else {"sni_hostname": target.server_name}
    # A client per request: a pooled connection verified for one name must never carry a
    # request for another name that resolved to the same address.
    try:
        async with (
            httpx.AsyncClient(
                verify=_TLS, trust_env=False, follow_redirects=False, timeout=deadline
            ) as client,
            client.stream(
                method, target.url, headers=sent_headers, content=content, extensions=extensions
            ) as response,
        ):
            status = response.status_code
    except httpx.TimeoutException:
        return Outcome(error=f"délai dépassé ({deadline:g} s)")
    except httpx.ConnectError as exc:
        if _caused_by_tls(exc):
            return Outcome(error="échec TLS (certificat refusé, ou serveur sans TLS)")
        return Outcome(error="connexion impossible au destinataire")
    except (httpx.HTTPError, OSError):
        return Outcome(error="échec de l'envoi (erreur réseau ou protocole)")
    if 300 <= status < 400:
        return Outcome(status_code=status, error=f"redirection non suivie (HTTP {status})")
    if not 200 <= status < 300:
        return Outcome(status_code=status, error=f"réponse HTTP {status}")
    return Outcome(status_code=status)

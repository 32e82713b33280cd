"""apprise channels: which URLs a user may use, and one notification sent.

apprise connects on its own (through each service's library), so the address cannot be
pinned nor checked once resolved: apprise URLs are for admins, or for hosts the operator
lists in ``allowed_outbound_hosts`` (by name, or an address inside a listed network).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import warnings
from urllib.parse import urlsplit

import apprise
from apprise.manager_plugins import NotificationManager

from backup_api.netpolicy import HostNotAllowedError
from backup_api.notifications.outbound import Outcome

# apprise's own log lines name the services' URLs, which carry tokens: they stay out of
# the service's log.
_apprise_logger = logging.getLogger("apprise")
_apprise_logger.propagate = False
_apprise_logger.setLevel(logging.CRITICAL + 1)

# apprise loads its plugins on first use, and its e-mail plugin imports ``imghdr``, which
# warns of its removal in Python 3.13: loaded here once, with that warning silenced, so
# no request meets it.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    NotificationManager().load_modules()  # type: ignore[no-untyped-call]

NOT_LISTED = (
    "les canaux apprise sont réservés aux administrateurs, sauf vers un hôte listé dans "
    "BACKUP_API_ALLOWED_OUTBOUND_HOSTS"
)


def scheme_of(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else ""


def mask(url: str) -> str:
    """The scheme only: in many apprise URLs the "host" is itself a token (Telegram's
    bot token, a Discord webhook id)."""
    return f"{scheme_of(url) or '?'}://***"


def check_url(url: str) -> None:
    """A URL apprise knows (a ``ValueError`` in French otherwise)."""
    if not scheme_of(url):
        raise ValueError("URL apprise invalide (schéma://... attendu)")
    if apprise.Apprise.instantiate(url) is None:
        raise ValueError(f"URL apprise non reconnue (schéma {scheme_of(url)[:20]})")


def host_listed(url: str, allowed: list[str]) -> bool:
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    if not host:
        return False
    for entry in allowed:
        entry = entry.strip().lower()
        if entry == host:
            return True
        try:
            network = ipaddress.ip_network(entry, strict=False)
            address = ipaddress.ip_address(host)
        except ValueError:
            continue
        if address.version == network.version and address in network:
            return True
    return False


def check_allowed(url: str, *, owner_is_admin: bool, allowed: list[str]) -> None:
    if not owner_is_admin and not host_listed(url, allowed):
        raise HostNotAllowedError(NOT_LISTED)


def summary(event_type: str, content: str) -> tuple[str, str]:
    """A title and a short text for chat services, from the webhook body."""
    data = json.loads(content).get("data") or {}
    parts = [event_type]
    database = data.get("database") or {}
    if database.get("name"):
        parts.append(f"base « {database['name']} »")
    record = data.get("backup") or data.get("restore") or {}
    if record.get("error_msg"):
        parts.append(str(record["error_msg"]))
    if data.get("reason"):
        parts.append(str(data["reason"]))
    return f"backup-api: {event_type}", " — ".join(parts)


async def send(
    url: str,
    event_type: str,
    content: str,
    *,
    owner_is_admin: bool,
    allowed: list[str],
    deadline: float,
) -> Outcome:
    try:
        check_allowed(url, owner_is_admin=owner_is_admin, allowed=allowed)
    except HostNotAllowedError as exc:
        return Outcome(error=str(exc))
    notifier = apprise.Apprise()
    if not notifier.add(url):
        return Outcome(error="URL apprise non reconnue")
    title, text = summary(event_type, content)
    try:
        async with asyncio.timeout(deadline):
            result = await notifier.async_notify(body=text, title=title)
    except TimeoutError:
        return Outcome(error=f"délai dépassé ({deadline:g} s)")
    except Exception:
        return Outcome(error="échec de l'envoi apprise")
    if not result:
        return Outcome(error="échec de l'envoi apprise (le service a refusé ou n'a pas répondu)")
    return Outcome(status_code=None)

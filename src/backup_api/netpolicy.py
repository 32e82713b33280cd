"""Where the service may connect: ``BACKUP_API_ALLOWED_DB_HOSTS`` (names and CIDRs)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket


class HostNotAllowedError(Exception):
    pass


def _networks(allowed: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for entry in allowed:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    return networks


async def resolve_addresses(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise HostNotAllowedError(f"hôte introuvable: {host}") from None
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


async def pin_allowed_address(host: str, port: int, allowed: list[str]) -> str | None:
    """The address to connect to, checked against the allow-list; ``None`` when unrestricted.

    A listed name is allowed whatever it resolves to; otherwise the resolved address must
    fall in a listed network. Either way the tool is then given that address, so a name
    that resolves elsewhere a moment later cannot redirect the connection.
    """
    if not allowed:
        return None
    addresses = await resolve_addresses(host, port)
    names = {entry.lower() for entry in allowed if "/" not in entry and not _is_ip(entry)}
    if host.lower() in names:
        return addresses[0]
    networks = _networks([e if "/" in e else f"{e}/{_full(e)}" for e in allowed if _is_net(e)])
    for address in addresses:
        ip = ipaddress.ip_address(address)
        if any(ip.version == net.version and ip in net for net in networks):
            return address
    raise HostNotAllowedError(f"hôte non autorisé par la configuration: {host}")


def _is_ip(entry: str) -> bool:
    try:
        ipaddress.ip_address(entry)
    except ValueError:
        return False
    return True


def _is_net(entry: str) -> bool:
    return "/" in entry or _is_ip(entry)


def _full(entry: str) -> int:
    return 32 if ipaddress.ip_address(entry).version == 4 else 128

"""Where the service may connect: ``BACKUP_API_ALLOWED_DB_HOSTS`` (names and CIDRs), and
addresses nobody may reach unless the operator lists them (link-local, multicast,
unspecified)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class HostNotAllowedError(Exception):
    pass


class UnknownHostError(HostNotAllowedError):
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
        raise UnknownHostError(f"hôte introuvable: {host}") from None
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


def _plain(address: str) -> IPAddress:
    ip = ipaddress.ip_address(address)
    # ::ffff:169.254.169.254 reaches the same place as 169.254.169.254.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_special(address: str) -> bool:
    """Link-local (cloud metadata services live there), multicast or unspecified
    (``0.0.0.0`` reaches this very host)."""
    ip = _plain(address)
    return ip.is_link_local or ip.is_multicast or ip.is_unspecified


def allowed_among(host: str, addresses: list[str], allowed: list[str]) -> list[str]:
    """The addresses of ``host`` the service may connect to, in resolution order.

    A listed name is allowed whatever it resolves to; otherwise an address must fall in a
    listed network. Without a list every address is allowed but the special ones, which
    need listing in any case.
    """
    names = {entry.lower() for entry in allowed if "/" not in entry and not _is_ip(entry)}
    networks = _networks([e if "/" in e else f"{e}/{_full(e)}" for e in allowed if _is_net(e)])
    name_listed = host.lower() in names
    result = []
    for address in addresses:
        ip = _plain(address)
        listed = name_listed or any(ip.version == net.version and ip in net for net in networks)
        if listed or (not allowed and not is_special(address)):
            result.append(address)
    if result:
        return result
    if allowed:
        raise HostNotAllowedError(f"hôte non autorisé par la configuration: {host}")
    raise HostNotAllowedError(
        f"adresse non autorisée (lien local, multicast ou non spécifiée): {host}"
    )


async def allowed_addresses(host: str, port: int, allowed: list[str]) -> list[str]:
    """Resolve ``host`` once and keep the addresses the service may connect to.

    The caller connects to one of these and gives the tool that same address, so a name
    that resolves elsewhere a moment later cannot redirect the connection.
    """
    return allowed_among(host, await resolve_addresses(host, port), allowed)


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


def outbound_allowed_among(host: str, addresses: list[str], allowed: list[str]) -> list[str]:
    """The addresses of an outbound target chosen by a non-admin (an S3 endpoint, a
    webhook) that the service may connect to, in resolution order.

    Public addresses only, so a user cannot make the service probe its own network: a
    private, loopback, link-local or otherwise reserved address needs the operator to list
    the name or a network holding it (``BACKUP_API_ALLOWED_OUTBOUND_HOSTS``).
    """
    names = {entry.lower() for entry in allowed if "/" not in entry and not _is_ip(entry)}
    networks = _networks([e if "/" in e else f"{e}/{_full(e)}" for e in allowed if _is_net(e)])
    name_listed = host.lower() in names
    result = []
    for address in addresses:
        ip = _plain(address)
        listed = name_listed or any(ip.version == net.version and ip in net for net in networks)
        if listed or ip.is_global:
            result.append(address)
    if result:
        return result
    raise HostNotAllowedError(
        f"adresse non publique (privée, locale ou réservée) non autorisée: {host}"
    )

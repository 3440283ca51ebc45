"""Which addresses a webhook may be delivered to (server-side request forgery guard).

A webhook makes the daemon send requests wherever an admin (or a stolen admin token) points it.
Left open, that reaches what only the daemon can reach: its own loopback services (the API
itself, a database console, the MQTT broker's admin port), the cloud metadata address
169.254.169.254, link-local devices. So targets are refused when any address their host name
resolves to is:

- loopback (127.0.0.0/8, ::1), unspecified or "this network" (0.0.0.0/8, ::),
- link-local (169.254.0.0/16, fe80::/10), multicast (224.0.0.0/4, ff00::/8),
- reserved or broadcast (240.0.0.0/4, 255.255.255.255), and the IPv4-mapped forms of all these.

Private LAN ranges (10/8, 172.16/12, 192.168/16, fc00::/7) stay allowed: Home Assistant, Node-RED
and the like live there, and they are the reason webhooks exist on a home appliance.

The host is checked when a subscription is made (a 400 that says why) and again at every
delivery, by the HTTP client's own resolver: the addresses that were checked are the ones the
connection uses, so a DNS name that answers a public address first and 127.0.0.1 later (DNS
rebinding) gets nowhere. An admin can allow exceptions with `[webhooks] allow_private_targets`:
a comma-separated list of addresses, networks (CIDR) or address:port pairs, or "all".
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")


class TargetRefused(OSError):
    """A webhook target that resolves to an address webhooks may not reach."""


def blocked_reason(ip: IPAddress) -> str | None:
    """Why webhooks may not reach this address by default, or None when they may."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK):
        return "an unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_reserved or (isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255")):
        return "a reserved address"
    return None


@dataclass(frozen=True)
class TargetPolicy:
    """The addresses webhooks may reach: everything routable, plus the admin's exceptions."""

    allow_all: bool = False
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    endpoints: frozenset[tuple[IPAddress, int]] = frozenset()

    @classmethod
    def parse(cls, text: str) -> "TargetPolicy":
        """From the setting: "" (no exceptions), "all", or entries like
        "127.0.0.1:9000, [::1]:8123, 169.254.0.0/16, 127.0.0.1". ValueError names a bad entry."""
        networks, endpoints = [], set()
        for raw in (text or "").split(","):
            entry = raw.strip()
            if not entry:
                continue
            if entry.lower() in ("all", "*", "true"):
                return cls(allow_all=True)
            try:
                if "/" in entry:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                    continue
                try:
                    networks.append(ipaddress.ip_network(entry))  # a bare address
                    continue
                except ValueError:
                    pass
                host, _, port = entry.rpartition(":")
                host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
                number = int(port)
                if not 0 < number < 65536:
                    raise ValueError
                endpoints.add((ipaddress.ip_address(host), number))
            except ValueError:
                raise ValueError(f"{entry!r} is not an address, a network (CIDR) or address:port") from None
        return cls(networks=tuple(networks), endpoints=frozenset(endpoints))

    def refusal(self, ip: IPAddress, port: int) -> str | None:
        """Why (ip, port) is refused, or None."""
        why = blocked_reason(ip)
        if why is None or self.allow_all:
            return None
        if (ip, port) in self.endpoints or any(ip in net for net in self.networks if net.version == ip.version):
            return None
        return why

    def check(self, host: str, addresses: list[str], port: int) -> None:
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            why = self.refusal(ip, port)
            if why is not None:
                shown = host if host == address else f"{host} ({address})"
                raise TargetRefused(f"webhook target {shown} is {why}; an admin can allow it with "
                                    "[webhooks] allow_private_targets")

    async def check_url(self, url: str) -> None:
        """Resolve the URL's host now and refuse it if any of its addresses is refused.
        TargetRefused (with the reason) or OSError (the name does not resolve)."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            literal = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = [str(info[4][0]) for info in infos]
        else:
            addresses = [str(literal)]
        self.check(host, addresses, port)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing host names that resolve to a refused address. The connection
    is made to exactly the addresses returned here, so no second lookup can swap them."""

    def __init__(self, policy: TargetPolicy) -> None:
        self.policy = policy
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET,
                      ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        self.policy.check(host, [str(r["host"]) for r in results], port)
        return results

    async def close(self) -> None:
        await self._inner.close()


def refused_in(exc: BaseException | None) -> TargetRefused | None:
    """The TargetRefused somewhere in an exception's chain (aiohttp wraps resolver errors)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, TargetRefused):
            return exc
        seen.add(id(exc))
        found: Any = getattr(exc, "os_error", None)
        if isinstance(found, TargetRefused):
            return found
        exc = exc.__cause__ or exc.__context__
    return None

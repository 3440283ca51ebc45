"""zeroconf (mDNS/DNS-SD): a phone or Home Assistant on the same network finds Shoebox without an
address typed in.

Two services point at the web server: `_http._tcp` (what browsers and generic tools look for;
`_https._tcp` when the server speaks HTTPS, the default) and `_shoebox._tcp` (what a Shoebox app
looks for), both on the HTTPS port when HTTPS is on, with TXT `txtvers=1`, `path=/`,
`version`, `api=/api/v1`, `id` (the library's stable instance id, so a client can tell two
Shoeboxes apart and recognise one whose address changed) and, when the thumbnail server runs,
`thumbs` (its port), and with HTTPS `scheme=https` (so an app knows to connect with TLS and,
with the local CA, what to trust). Registered only once the HTTP server
listens; a name already taken on the network gets a number (`Shoebox-2`); the addresses are
checked every `poll` seconds (a DHCP renewal, Wi-Fi and Ethernet swapped) and the records
updated; everything is withdrawn on shutdown so clients do not keep a dead entry.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from typing import Any

import ifaddr
from zeroconf import InterfaceChoice, IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

log = logging.getLogger(__name__)

SERVICE_TYPES = ("_http._tcp.local.", "_shoebox._tcp.local.")
HTTPS_SERVICE_TYPES = ("_https._tcp.local.", "_shoebox._tcp.local.")
LISTEN_BEFORE_REGISTER = 1.5  # seconds


class ZeroconfError(Exception):
    """The zeroconf settings cannot work (an interface address that is not an IP address)."""


def parse_interfaces(value: str) -> list[str] | None:
    """"all" → None (every interface); otherwise a comma-separated list of IP addresses."""
    value = (value or "").strip()
    if value.lower() in ("", "all"):
        return None
    out = []
    for part in value.split(","):
        part = part.strip()
        try:
            out.append(str(ipaddress.ip_address(part)))
        except ValueError:
            raise ZeroconfError(f"zeroconf.interfaces: {part!r} is not an IP address (use \"all\" or addresses "
                                "separated by commas)") from None
    return out


def host_addresses() -> list[str]:
    """This machine's addresses worth announcing: IPv4 and global/unique-local IPv6, no loopback,
    no link-local (a phone cannot use an fe80:: address without a scope)."""
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            raw = ip.ip[0] if isinstance(ip.ip, tuple) else ip.ip
            try:
                addr = ipaddress.ip_address(raw)
            except ValueError:
                continue
            if addr.is_loopback or addr.is_link_local or addr.is_multicast or addr.is_unspecified:
                continue
            if str(addr) not in found:
                found.append(str(addr))
    return found


def _label(text: str) -> str:
    """A DNS host label from the machine's name: letters, digits and hyphens."""
    label = re.sub(r"[^A-Za-z0-9-]+", "-", text.split(".")[0]).strip("-")
    return label[:63] or "shoebox"


class Announcer:
    """Registers, keeps current and withdraws Shoebox's zeroconf services."""

    def __init__(self, *, port: int, instance_id: str, version: str, name: str = "Shoebox",
                 interfaces: list[str] | None = None, poll: float = 30.0, hostname: str | None = None,
                 thumbnail_port: int | None = None, https: bool = False) -> None:
        self.port = port
        self.https = https
        self.service_types = HTTPS_SERVICE_TYPES if https else SERVICE_TYPES
        self.thumbnail_port = thumbnail_port
        self.instance_id = instance_id
        self.version = version
        self.name = name.replace(".", " ").strip() or "Shoebox"
        self.interfaces = interfaces
        self.poll = poll
        self.server = f"{_label(hostname or socket.gethostname())}.local."
        self.zc: AsyncZeroconf | None = None
        self.infos: list[ServiceInfo] = []
        self.addresses: list[str] = []
        self._task: asyncio.Task[None] | None = None

    def properties(self) -> dict[str, str]:
        txt = {"txtvers": "1", "path": "/", "version": self.version, "api": "/api/v1", "id": self.instance_id}
        if self.thumbnail_port:
            txt["thumbs"] = str(self.thumbnail_port)
        if self.https:
            txt["scheme"] = "https"
        return txt

    def current_addresses(self) -> list[str]:
        return list(self.interfaces) if self.interfaces is not None else host_addresses()

    def _info(self, service_type: str, name: str, addresses: list[str]) -> ServiceInfo:
        return ServiceInfo(service_type, name, port=self.port, properties=self.properties(), server=self.server,
                           parsed_addresses=addresses)

    def listen_on(self) -> list[str] | InterfaceChoice:
        """What AsyncZeroconf binds to: the configured addresses, or InterfaceChoice.All (it takes
        no "all" string: that raised TypeError, so the default configuration announced nothing)."""
        return list(self.interfaces) if self.interfaces is not None else InterfaceChoice.All

    async def start(self) -> None:
        self.zc = AsyncZeroconf(interfaces=self.listen_on(), ip_version=IPVersion.All)
        self.addresses = self.current_addresses()
        # python-zeroconf spots a taken name only from records already in its cache, and a probe's
        # answer does not carry the PTR it looks for: listen for the service types first, so
        # another Shoebox's records are known before we pick our name.
        browser = AsyncServiceBrowser(self.zc.zeroconf, list(self.service_types), handlers=[lambda **_: None])
        await asyncio.sleep(LISTEN_BEFORE_REGISTER)
        await browser.async_cancel()
        for service_type in self.service_types:
            info = self._info(service_type, f"{self.name}.{service_type}", self.addresses)
            await (await self.zc.async_register_service(info, allow_name_change=True))
            self.infos.append(info)  # its name now carries any "-2" a conflict added
            log.info("zeroconf: announced %s on port %d (%s)", info.name, self.port, ", ".join(self.addresses) or "-")
        self._task = asyncio.create_task(self._watch_addresses(), name="zeroconf-addresses")

    async def refresh(self) -> bool:
        """Re-announce if the addresses changed. Returns whether they did."""
        addresses = await asyncio.to_thread(self.current_addresses)
        if sorted(addresses) == sorted(self.addresses) or self.zc is None:
            return False
        log.info("zeroconf: addresses changed %s -> %s", self.addresses, addresses)
        self.addresses = addresses
        updated = []
        for info in self.infos:
            new = self._info(info.type, info.name, addresses)
            await (await self.zc.async_update_service(new))
            updated.append(new)
        self.infos = updated
        return True

    async def _watch_addresses(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("zeroconf: could not update the announced addresses")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.zc is not None:
            try:
                await self.zc.async_unregister_all_services()
            finally:
                await self.zc.async_close()
            self.zc = None
        self.infos = []

    def status(self) -> dict[str, Any]:
        return {"names": [i.name for i in self.infos], "addresses": self.addresses, "server": self.server}

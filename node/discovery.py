"""LAN discovery of permitnet nodes with zeroconf (``_permitnet._tcp.local.``).

A node may advertise itself with a TXT record holding its country, its signing key's identifier
and the scheme and path of its API; ``permitnet discover`` and a node's own browser list what
answers. Nothing found here is trusted: :mod:`permitnet.node.discovery_challenge` holds the
signed challenge a discovered node must pass before its address is used for a peer.

Discovery is off by default: a node neither advertises nor browses unless its operator turns it
on. The demo turns it on, bound to the loopback interface so that nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from typing import TYPE_CHECKING, Final, Self

import ifaddr
from aiohttp import web
from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from permitnet.node import background
from permitnet.node.discovery_challenge import (
    CHALLENGE_PATH,
    Advertisement,
    DiscoveredNode,
    DiscoveryError,
    answer_challenge,
    make_challenge,
    prove,
    setup_challenge,
    verify_answer,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    import aiohttp
    from zeroconf import Zeroconf

    from permitnet.node.peer_auth import PeerKeyResolver

__all__ = [
    "CHALLENGE_PATH",
    "DISCOVERED_PEERS_KEY",
    "SERVICE_TYPE",
    "Advertisement",
    "Advertiser",
    "DiscoveredNode",
    "DiscoveredPeers",
    "DiscoveryError",
    "advertise_context",
    "announce_addresses",
    "answer_challenge",
    "browse",
    "discover_peers_once",
    "discovery_loop_context",
    "make_challenge",
    "prove",
    "setup_challenge",
    "verify_answer",
]

SERVICE_TYPE: Final = "_permitnet._tcp.local."
_log = logging.getLogger(__name__)


class DiscoveredPeers:
    """Peer addresses found on the LAN that passed the signed challenge, by country.

    The delivery worker tries them after the endpoints the registry publishes; nothing enters
    here without :func:`prove` having checked the peer's answer against the registry.
    """

    def __init__(self) -> None:
        self._found: dict[str, tuple[str, int]] = {}

    def urls(self, country: str) -> tuple[str, ...]:
        """The verified addresses of ``country``'s node (at most one)."""
        entry = self._found.get(country)
        return () if entry is None else (entry[0],)

    def add(self, country: str, url: str, *, verified_at: int) -> None:
        """Record a verified address."""
        self._found[country] = (url, verified_at)

    def forget(self, country: str, url: str) -> None:
        """Drop ``url`` for ``country`` (it failed a later challenge)."""
        if self._found.get(country, ("",))[0] == url:
            del self._found[country]

    def snapshot(self) -> dict[str, str]:
        """The verified addresses by country, for status pages and tests."""
        return {country: url for country, (url, _at) in self._found.items()}


#: The verified LAN addresses of an app (always present; empty unless discovery runs).
DISCOVERED_PEERS_KEY: Final = web.AppKey("permitnet_discovered_peers", DiscoveredPeers)


def _instance_name(adv: Advertisement, port: int) -> str:
    # The port makes the name unique per listening node: a second announcement of the same
    # country and key (a standby, or an impostor) must not depend on mDNS conflict renaming,
    # which races when both register at once. The name is a label only; trust comes from the
    # signed challenge.
    return f"permitnet-{adv.country}-{adv.kid.hex()[:12]}-{port}.{SERVICE_TYPE}"


class Advertiser:
    """Announces one node on the LAN until closed. Use as an async context manager."""

    def __init__(
        self,
        advertisement: Advertisement,
        *,
        port: int,
        addresses: Sequence[str],
        interfaces: Sequence[str] | None = None,
    ) -> None:
        """Prepare the announcement.

        Args:
            advertisement: the TXT record.
            port: the TCP port the node's API listens on.
            addresses: the IPv4 addresses to announce.
            interfaces: the interface addresses to announce on; ``None`` means all.
        """
        for address in addresses:
            ipaddress.IPv4Address(address)
        self._info = AsyncServiceInfo(
            SERVICE_TYPE,
            _instance_name(advertisement, port),
            addresses=[socket.inet_aton(a) for a in addresses],
            port=port,
            properties=advertisement.to_properties(),
            server=f"permitnet-{advertisement.country.lower()}-{port}.local.",
        )
        self._interfaces = list(interfaces) if interfaces is not None else None
        self._zeroconf: AsyncZeroconf | None = None

    async def __aenter__(self) -> Self:
        self._zeroconf = _zeroconf(self._interfaces)
        try:
            await self._zeroconf.async_register_service(self._info, allow_name_change=True)
        except BaseException:
            await self._zeroconf.async_close()
            raise
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._zeroconf is not None:
            await self._zeroconf.async_unregister_all_services()
            await self._zeroconf.async_close()
            self._zeroconf = None


def _zeroconf(interfaces: Sequence[str] | None) -> AsyncZeroconf:
    if interfaces is None:
        return AsyncZeroconf(ip_version=IPVersion.V4Only)
    return AsyncZeroconf(interfaces=list(interfaces), ip_version=IPVersion.V4Only)


async def browse(
    duration: float, *, interfaces: Sequence[str] | None = None, stop_after: int | None = None
) -> list[DiscoveredNode]:
    """Listen for ``_permitnet._tcp`` announcements for up to ``duration`` seconds.

    Args:
        duration: how long to listen, at most.
        interfaces: the interface addresses to listen on; ``None`` means all.
        stop_after: return as soon as this many well-formed nodes were found.

    Returns:
        The nodes found with a well-formed TXT record, by name; malformed ones are skipped.
    """
    zc = _zeroconf(interfaces)
    names: asyncio.Queue[str] = asyncio.Queue()

    def on_change(
        zeroconf: Zeroconf,  # noqa: ARG001 - the signature zeroconf calls
        service_type: str,  # noqa: ARG001
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        if state_change is not ServiceStateChange.Removed:
            names.put_nowait(name)

    found: dict[str, DiscoveredNode] = {}
    browser = AsyncServiceBrowser(zc.zeroconf, SERVICE_TYPE, handlers=[on_change])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration
    try:
        while (remaining := deadline - loop.time()) > 0:
            if stop_after is not None and len(found) >= stop_after:
                break
            try:
                # asyncio.timeout, not wait_for, which on Python 3.11 can swallow a cancellation.
                async with asyncio.timeout(remaining):
                    name = await names.get()
            except TimeoutError:
                break
            node = await _resolve(zc, name, timeout_ms=max(100, int(remaining * 1000)))
            if node is not None:
                found[name] = node
    finally:
        await browser.async_cancel()
        await zc.async_close()
    return sorted(found.values(), key=lambda n: (n.advertisement.country, n.name))


async def _resolve(zc: AsyncZeroconf, name: str, *, timeout_ms: int) -> DiscoveredNode | None:
    info = AsyncServiceInfo(SERVICE_TYPE, name)
    if not await info.async_request(zc.zeroconf, min(timeout_ms, 3000)) or info.port is None:
        return None
    try:
        advertisement = Advertisement.from_properties(dict(info.properties))
    except DiscoveryError:
        return None
    return DiscoveredNode(
        name=name,
        advertisement=advertisement,
        addresses=tuple(info.parsed_addresses(IPVersion.V4Only)),
        port=info.port,
    )


def announce_addresses(host: str) -> tuple[list[str], list[str] | None]:
    """Return the addresses to announce and the interfaces to announce on, for a listen address.

    A node listening on loopback is announced on loopback only; on a specific IPv4 address, at
    that address on all interfaces; on ``0.0.0.0``, at each of the machine's non-loopback IPv4
    addresses.

    Raises:
        DiscoveryError: the host is not an IPv4 address, or the machine has none to announce.
    """
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError as e:
        raise DiscoveryError(f"discovery needs an IPv4 listen address, got {host!r}") from e
    if address.is_loopback:
        return [host], [host]
    if not address.is_unspecified:
        return [host], None
    found = [a for a in _ipv4_addresses() if not ipaddress.IPv4Address(a).is_loopback]
    if not found:
        raise DiscoveryError("no non-loopback IPv4 address to announce")
    return found, None


def _ipv4_addresses() -> list[str]:
    # ifaddr is what zeroconf itself uses to list the machine's interface addresses.
    return [
        str(ip.ip)
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
        if ip.is_IPv4 and isinstance(ip.ip, str)
    ]


def advertise_context(
    advertisement: Callable[[], Advertisement], *, port: int, host: str
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Return an aiohttp cleanup context that announces the node while it runs.

    Args:
        advertisement: returns the TXT record (read at start-up, after the key is loaded).
        port: the port the node listens on.
        host: the address the node listens on (see :func:`announce_addresses`).
    """

    async def announce(_app: web.Application) -> AsyncIterator[None]:
        addresses, interfaces = announce_addresses(host)
        async with Advertiser(
            advertisement(), port=port, addresses=addresses, interfaces=interfaces
        ):
            yield

    return announce


async def discover_peers_once(
    peers: DiscoveredPeers,
    *,
    own_country: str,
    resolve_key: PeerKeyResolver,
    session: aiohttp.ClientSession,
    clock: Callable[[], int],
    seconds: float,
    interfaces: Sequence[str] | None,
) -> dict[str, str]:
    """Browse once, challenge every other country's node found, and record who passed.

    A node that fails its challenge is logged and its address, if recorded, forgotten.

    Returns:
        The addresses that passed now, by country.
    """
    passed: dict[str, str] = {}
    for node in await browse(seconds, interfaces=interfaces):
        country = node.advertisement.country
        if country == own_country:
            continue
        try:
            url, _key = await prove(
                session, node, own_country=own_country, resolve_key=resolve_key, clock=clock
            )
        except DiscoveryError as e:
            _log.warning("discovered node not used: %s", e)
            for url in node.urls:
                peers.forget(country, url)
            continue
        peers.add(country, url, verified_at=clock())
        passed[country] = url
    return passed


def discovery_loop_context(
    *,
    peers: Callable[[web.Application], DiscoveredPeers],
    own_country: str,
    resolve_key: Callable[[web.Application], PeerKeyResolver],
    clock: Callable[[], int],
    host: str,
    every_seconds: float = 60.0,
    browse_seconds: float = 3.0,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Return an aiohttp cleanup context that browses and verifies peers while the node runs.

    The loop is a task owned by the context: cancelled and awaited at cleanup; one failed round
    is logged and the next one runs.
    """
    _addresses, interfaces = announce_addresses(host)

    async def loop(app: web.Application) -> None:
        import aiohttp  # noqa: PLC0415 - the client is only needed while discovery runs

        async with aiohttp.ClientSession() as session:
            await background.every(
                every_seconds,
                lambda: discover_peers_once(
                    peers(app),
                    own_country=own_country,
                    resolve_key=resolve_key(app),
                    session=session,
                    clock=clock,
                    seconds=browse_seconds,
                    interfaces=interfaces,
                ),
                "LAN discovery round",
            )

    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(loop(app), name="permitnet-lan-discovery")
        try:
            yield
        finally:
            await background.stop([task])

    return context

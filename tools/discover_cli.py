"""``permitnet discover``: list the permitnet nodes announced on the LAN, and check them.

Without ``--verify`` the list is what the announcements claim, marked unverified. With
``--verify DIR``, each discovered node is challenged (``POST /peer/v1/challenge``) and its signed
answer is checked against the key that the registry, as node DIR holds it verified, lists for the
announced country; only then is an address shown as verified.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from permitnet.node.config import NodeConfig
from permitnet.node.discovery import DiscoveryError, browse, prove
from permitnet.node.errors import NodeError
from permitnet.node.peer_auth import resolver_from_registry
from permitnet.tools.cli import CliError

if TYPE_CHECKING:
    import argparse

    from permitnet.node.discovery import DiscoveredNode
    from permitnet.protocol.registry_view import RegistryView

__all__ = ["register_discover"]


def register_discover(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``permitnet discover``."""
    p = subparsers.add_parser(
        "discover",
        help="list permitnet nodes announced on the local network",
        description="Listen for _permitnet._tcp.local. zeroconf announcements and list each "
        "node's country, key fingerprint and URLs. What is listed is unverified unless "
        "--verify is given: then each node must sign a fresh challenge with the key the "
        "registry lists for its country.",
    )
    p.add_argument("--seconds", type=float, default=3.0, help="how long to listen (default 3)")
    p.add_argument(
        "--interface",
        action="append",
        dest="interfaces",
        metavar="ADDRESS",
        help="listen only on this interface address (repeatable; default: all)",
    )
    p.add_argument(
        "--verify",
        type=Path,
        metavar="NODE_DIR",
        help="challenge each node, checking its answer against this node's registry data",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=cmd_discover)


def cmd_discover(args: argparse.Namespace) -> int:
    """List (and optionally verify) nodes announced on the LAN."""
    if args.seconds <= 0 or args.seconds > 600:
        raise CliError("--seconds must be between 0 and 600")
    try:
        rows = asyncio.run(_discover(args))
    except NodeError as e:
        raise CliError(str(e)) from e
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no permitnet node announced itself within {args.seconds:g} s")
        return 0
    print(f"{'COUNTRY':8} {'KEY FINGERPRINT':34} {'STATUS':11} URLS")
    for row in rows:
        status = "verified" if row["verified"] else "unverified"
        urls = row["verified_url"] or " ".join(row["urls"])
        print(f"{row['country']:8} {row['kid']:34} {status:11} {urls}")
        if row.get("reason"):
            print(f"{'':8} {row['reason']}")
    return 0


async def _discover(args: argparse.Namespace) -> list[dict[str, Any]]:
    view: RegistryView | None = None
    own_country = "ZZ"
    if args.verify is not None:
        config = NodeConfig.load(args.verify)
        own_country = config.country
        view = await _registry_view(config)
    nodes = await browse(args.seconds, interfaces=args.interfaces)
    rows = []
    async with aiohttp.ClientSession() as session:
        for node in nodes:
            row = _row(node)
            if view is not None:
                await _verify(session, node, row, own_country, view)
            rows.append(row)
    return rows


def _row(node: DiscoveredNode) -> dict[str, Any]:
    return {
        "name": node.name,
        "country": node.advertisement.country,
        "kid": node.advertisement.kid.hex(),
        "urls": list(node.urls),
        "verified": False,
        "verified_url": None,
    }


async def _verify(
    session: aiohttp.ClientSession,
    node: DiscoveredNode,
    row: dict[str, Any],
    own_country: str,
    view: RegistryView,
) -> None:
    try:
        url, _key = await prove(
            session,
            node,
            own_country=own_country,
            resolve_key=resolver_from_registry(lambda: view),
            clock=lambda: int(time.time()),
        )
    except DiscoveryError as e:
        row["reason"] = str(e)
        return
    row["verified"] = True
    row["verified_url"] = url


async def _registry_view(config: NodeConfig) -> RegistryView:
    # Imported here so that a plain listing does not load the registry client.
    from permitnet.tools.ops_cli import registry_view_for  # noqa: PLC0415

    return await registry_view_for(config)

"""``permitnet node sync DIR``: fetch and verify the registry's newest data into the node's cache.

The running node refreshes on its own schedule; this command does it now, for an operator who
wants to see the result (before starting a node, after the INCB announced a publication, or on a
laptop used for offline verification). It tries the configured mirrors in order, each through the
node's verifying fetcher (root chain, signature, version, expiry, log consistency), with a progress
bar over the mirrors, and prints the version and freshness it holds.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import aiohttp

from permitnet.node.config import DEFAULT_REGISTRY_GRACE_SECONDS, NodeConfig
from permitnet.node.errors import NodeError
from permitnet.node.registry_fetch import RegistryFetcher
from permitnet.protocol.errors import ProtocolError
from permitnet.tools.cli import CliError
from permitnet.tools.progress import progress_bar

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

__all__ = ["register_sync"]


def register_sync(node: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``node sync`` to the ``node`` group."""
    from pathlib import Path  # noqa: PLC0415 - argparse type only

    p = node.add_parser(
        "sync",
        help="fetch and verify the registry's newest data now",
        description="Fetch the newest registry snapshot (or deltas) from the configured mirrors, "
        "verify it against the pinned root, store it in the node's cache, and print its "
        "version and freshness. The node may be running.",
    )
    p.add_argument("dir", type=Path, help="the node directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_sync)


def cmd_sync(args: argparse.Namespace) -> int:
    """Fetch and verify the registry now; see the parser's description."""
    config = NodeConfig.load(args.dir)
    try:
        root = config.registry_root_path.read_bytes()
    except OSError as e:
        raise CliError(f"cannot read the pinned registry root: {e}") from e
    mirrors = list(config.registry_urls)
    with progress_bar("sync", unit="mirrors", quiet=args.quiet) as report:
        line = asyncio.run(_sync(config, root, mirrors, report))
    print(line)
    return 0


async def _sync(
    config: NodeConfig, root: bytes, mirrors: list[str], report: Callable[[int, int], None]
) -> str:
    failures: list[str] = []
    async with aiohttp.ClientSession() as session:
        for done, mirror in enumerate(mirrors):
            try:
                fetcher = RegistryFetcher(
                    [mirror],
                    config.registry_cache_path,
                    root,
                    session,
                    DEFAULT_REGISTRY_GRACE_SECONDS,
                )
                view = await fetcher.refresh()
            except (NodeError, ProtocolError, ValueError) as e:
                failures.append(f"{mirror}: {e}")
                report(done + 1, len(mirrors))
                continue
            report(len(mirrors), len(mirrors))
            status = fetcher.status(int(time.time()))
            return (
                f"registry snapshot v{view.version} from {mirror}, verified and cached in "
                f"{config.registry_cache_path}: {status.describe()}"
            )
    raise CliError("no mirror gave verified registry data: " + "; ".join(failures))

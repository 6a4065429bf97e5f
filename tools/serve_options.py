"""Options of ``permitnet node serve`` from the operations issue: HTTPS, JSON logs, discovery.

:mod:`permitnet.tools.node_cli` owns ``serve``; it calls :func:`ops_serve_options` before
building the app and :func:`ops_attach` after, so that these options live beside the code they
configure (node/tls.py, node/logs.py, node/discovery.py).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from permitnet.node.app import REGISTRY_KEY
from permitnet.node.discovery import (
    DISCOVERED_PEERS_KEY,
    Advertisement,
    advertise_context,
    discovery_loop_context,
)
from permitnet.node.logs import configure_logging
from permitnet.node.peer_auth import resolver_from_registry
from permitnet.node.tls import server_ssl_context
from permitnet.tools.cli import CliError

if TYPE_CHECKING:
    import argparse
    import ssl

    from aiohttp import web

    from permitnet.node.config import NodeConfig

__all__ = ["ops_attach", "ops_serve_options"]


def ops_serve_options(args: argparse.Namespace) -> ssl.SSLContext | None:
    """Apply ``node serve``'s operations options: JSON logs, and HTTPS from cert and key files.

    Returns:
        The server TLS context, or ``None`` to serve plain HTTP.

    Raises:
        CliError: only one of ``--tls-cert`` and ``--tls-key`` is given.
        ConfigError: a TLS file is missing, not PEM, or the key does not match.
    """
    if args.log_format == "json":
        configure_logging(json_logs=True, level=logging.getLogger().level)
    if args.tls_cert is None and args.tls_key is None:
        return None
    if args.tls_cert is None or args.tls_key is None:
        raise CliError("--tls-cert and --tls-key go together")
    return server_ssl_context(args.tls_cert, args.tls_key)


def ops_attach(
    app: web.Application, args: argparse.Namespace, config: NodeConfig, kid: bytes
) -> None:
    """Add ``node serve``'s optional background services to the node's app: LAN discovery.

    Discovery is off unless ``--discovery`` is given; the node is then announced with zeroconf
    for as long as it runs, and browses for peers every minute: those that pass the signed
    challenge are tried by delivery after the registry's endpoints
    (:mod:`permitnet.node.discovery`).
    """
    if not args.discovery:
        return
    scheme = "https" if args.tls_cert is not None else "http"
    app.cleanup_ctx.append(
        advertise_context(
            lambda: Advertisement(country=config.country, kid=kid, scheme=scheme),
            port=config.port,
            host=config.host,
        )
    )
    app.cleanup_ctx.append(
        discovery_loop_context(
            peers=lambda a: a[DISCOVERED_PEERS_KEY],
            own_country=config.country,
            resolve_key=lambda a: resolver_from_registry(lambda: a[REGISTRY_KEY].view),
            clock=lambda: int(time.time()),
            host=config.host,
        )
    )

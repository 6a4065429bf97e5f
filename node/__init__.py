"""A country's permitnet node: store, exchange with peers, REST API and web app.

The public surface: :func:`create_app` builds the server from a :class:`NodeConfig`;
:class:`NodeServices` is the lifecycle (drafts, four-eyes signing, balances, alerts, applying
received documents); :class:`Store` is the database; every failure is a :class:`NodeError`.
"""

from permitnet.node.app import create_app
from permitnet.node.config import NodeConfig
from permitnet.node.errors import NodeError
from permitnet.node.lifecycle import NodeServices
from permitnet.node.store import Store

__all__ = ["NodeConfig", "NodeError", "NodeServices", "Store", "create_app"]

"""The ``permitnet`` command line.

Each command group lives in its own module with a ``register(subparsers)`` function, listed in
``COMMAND_MODULES``. Errors print as one clear line with a non-zero exit code; ``--debug``
shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

from permitnet.node.errors import NodeError
from permitnet.protocol import ProtocolError
from permitnet.registry.errors import RegistryServerError

__all__ = ["CliError", "main"]

#: The modules that add command groups, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "permitnet.tools.node_cli",
    "permitnet.tools.ops_cli",
    "permitnet.tools.verify_cli",
    "permitnet.tools.registry_cli",
    "permitnet.tools.demo",
)


class CliError(Exception):
    """A failure to report to the operator as one line, with exit code 1."""


Handler = Callable[[argparse.Namespace], int | None]


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered command group."""
    try:
        installed = version("permitnet")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        installed = "unknown"
    parser = argparse.ArgumentParser(
        prog="permitnet",
        description="Federated import certificates and export authorizations for controlled "
        "substances (1961 and 1971 Conventions).",
    )
    parser.add_argument("--version", action="version", version=f"permitnet {installed}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    # Every package's own error root is reported as one line: commands need not wrap them.
    except (CliError, ProtocolError, NodeError, RegistryServerError, OSError) as e:
        if args.debug:
            raise
        print(f"permitnet: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

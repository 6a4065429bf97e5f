"""``permitnet demo``: a registry and three country nodes on localhost, in one command.

The first run creates, under the data directory: the INCB registry (with its offline root key
and an operator token), a node for Germany, France and India (each with its own SQLite database
and signing key), enrolls the keys through signed requests approved by the operator, publishes
the catalogue, estimates and assessments, creates a user of each role on each node, and makes
three trades in different states. Later runs reuse all of it. Everything runs for real: the
registry server and the nodes are the production aiohttp apps on real sockets, talking HTTP to
each other; the demo only drives them.

Ctrl-C (SIGINT) or SIGTERM stops everything cleanly. ``--reset`` deletes the demo's data first.
The demo's keys are stored unencrypted (``insecure_plaintext_key``): never reuse them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from aiohttp import web

from permitnet.node.app import REGISTRY_KEY, create_app
from permitnet.node.config import NodeConfig
from permitnet.node.discovery import (
    DISCOVERED_PEERS_KEY,
    Advertisement,
    Advertiser,
    discovery_loop_context,
)
from permitnet.node.keystore import SigningKey, generate_seed, load_key, save_key
from permitnet.node.peer_auth import resolver_from_registry
from permitnet.registry.app import RegistryConfig
from permitnet.registry.app import create_app as create_registry_app
from permitnet.registry.service import Registry
from permitnet.tools.cli import CliError
from permitnet.tools.demo_seed import (
    AUTHORITIES,
    Operator,
    create_api_token,
    create_users,
    publish_facts,
    seed_trades,
)

if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable

__all__ = ["register"]

STATE_FILE: Final = "demo.json"
CREDENTIALS_FILE: Final = "credentials.json"
STATE_FORMAT: Final = "permitnet-demo-1"
COUNTRIES: Final = ("DE", "FR", "IN")
HOST: Final = "127.0.0.1"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``permitnet demo``."""
    p = subparsers.add_parser(
        "demo",
        help="run a registry and three country nodes (DE, FR, IN) on localhost",
        description="Start the INCB registry and nodes for Germany, France and India on "
        "localhost with SQLite, the substance catalogue, estimates and assessments, users of "
        "each role (credentials printed) and a few trades. Ctrl-C stops everything; running "
        "again reuses the data.",
    )
    p.add_argument(
        "--data", type=Path, default=Path("demo-data"), help="data directory (default demo-data)"
    )
    p.add_argument("--reset", action="store_true", help="delete the demo's data and start afresh")
    p.add_argument(
        "--base-port",
        type=int,
        default=8470,
        help="registry on this port, DE/FR/IN on the next three (0: any free ports); "
        "fixed when the data is created",
    )
    p.add_argument(
        "--no-discovery", action="store_true", help="do not announce the nodes with zeroconf"
    )
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo network until interrupted."""
    data: Path = args.data
    if args.reset:
        _reset(data)
    if not 0 <= args.base_port <= 65532:
        raise CliError("--base-port must be 0 (any free ports) or 1..65532")
    return asyncio.run(_main(data, args.base_port, discovery=not args.no_discovery))


def _reset(data: Path) -> None:
    if not data.exists():
        return
    if not (data / STATE_FILE).is_file() and any(data.iterdir()):
        raise CliError(f"{data} is not empty and holds no {STATE_FILE}: not deleting it")
    shutil.rmtree(data)
    print(f"deleted {data}", flush=True)


async def _main(data: Path, base_port: int, *, discovery: bool) -> int:
    """Run until SIGINT or SIGTERM; return the exit code."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    stopping = asyncio.Event()
    serving = asyncio.Event()

    def stop() -> None:
        if not stopping.is_set():
            stopping.set()
            print("\nstopping the demo network...", flush=True)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    try:
        runner = asyncio.create_task(
            _run(data, base_port, discovery=discovery, stopping=stopping, serving=serving)
        )
        stopped = asyncio.create_task(stopping.wait())
        await asyncio.wait({runner, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not runner.done() and not serving.is_set():
            # Interrupted while setting up: cancel the setup; its cleanup stops what started.
            # Once serving, the runner ends by itself when ``stopping`` is set, and must not be
            # cancelled in the middle of closing the servers and databases.
            runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        stopped.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopped
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    print("demo network stopped", flush=True)
    return 0


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as e:
        sock.close()
        raise CliError(f"cannot listen on {HOST}:{port}: {e.strerror or e}") from e
    return sock


def _load_state(data: Path) -> dict[str, Any] | None:
    path = data / STATE_FILE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CliError(f"cannot read {path}: {e}; run with --reset to start afresh") from e
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CliError(f"{path} is not a {STATE_FORMAT} file; run with --reset to start afresh")
    if not state.get("complete"):
        raise CliError(
            f"the first run in {data} was interrupted before the network was set up; "
            "run with --reset to start afresh"
        )
    return state


def _save(path: Path, value: dict[str, Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
    temporary.replace(path)


async def _run(
    data: Path,
    base_port: int,
    *,
    discovery: bool,
    stopping: asyncio.Event,
    serving: asyncio.Event,
) -> None:
    state = _load_state(data)
    fresh = state is None
    if state is None:
        state, sockets = _create_state(data, base_port)
    else:
        sockets = {name: _bind(port) for name, port in state["ports"].items()}
    ports: dict[str, int] = state["ports"]
    registry_url = f"http://{HOST}:{ports['registry']}"
    async with contextlib.AsyncExitStack() as stack:
        for sock in sockets.values():
            stack.callback(sock.close)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        registry_runner = web.AppRunner(
            create_registry_app(RegistryConfig(directory=data / "registry")), access_log=None
        )
        await registry_runner.setup()
        stack.push_async_callback(registry_runner.cleanup)
        await web.SockSite(registry_runner, sockets["registry"]).start()
        operator = Operator(url=registry_url, token=state["operator_token"], session=session)
        if fresh:
            keys = {c: _init_node(data, c, ports[c], registry_url) for c in COUNTRIES}
            endpoints = {c: (f"http://{HOST}:{ports[c]}", keys[c]) for c in COUNTRIES}
            await publish_facts(operator, endpoints)
            state["credentials"] = {
                c: await create_users(_node_config(data, c).database_path, c) for c in COUNTRIES
            }
            state["api_tokens"] = {
                c: await create_api_token(_node_config(data, c).database_path, c) for c in COUNTRIES
            }
            _save(data / CREDENTIALS_FILE, state["credentials"] | {"api": state["api_tokens"]})
            state["complete"] = True
            _save(data / STATE_FILE, state)
        else:
            # A reused network may have been stopped for days: publish a fresh snapshot so that
            # the nodes' registry data is not expired.
            await operator.publish()
        apps: dict[str, web.Application] = {}
        for country in COUNTRIES:
            app = create_app(_node_config(data, country))
            if discovery:
                # Each node also browses (loopback here) and verifies the peers it finds.
                app.cleanup_ctx.append(
                    discovery_loop_context(
                        peers=lambda a: a[DISCOVERED_PEERS_KEY],
                        own_country=country,
                        resolve_key=lambda a: resolver_from_registry(lambda: a[REGISTRY_KEY].view),
                        clock=lambda: int(time.time()),
                        host=HOST,
                    )
                )
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            await web.SockSite(runner, sockets[country]).start()
            apps[country] = app
        for country, app in apps.items():
            await _wait_for(functools.partial(_has_registry, app), f"{country} registry data")
        if not state["seeded"]:
            print("making the demo trades (certificate, authorization, endorsement)...", flush=True)
            state["trades"] = await seed_trades(apps)
            state["seeded"] = True
            _save(data / STATE_FILE, state)
        if discovery:
            await _advertise(stack, data, ports)
        _banner(data, registry_url, ports, state)
        serving.set()
        await stopping.wait()


def _create_state(data: Path, base_port: int) -> tuple[dict[str, Any], dict[str, socket.socket]]:
    """Reserve the ports, create the registry, and write the (incomplete) state file."""
    data.mkdir(parents=True, exist_ok=True)
    if any(data.iterdir()):
        raise CliError(f"{data} is not empty and holds no {STATE_FILE}: choose another --data")
    sockets = {
        name: _bind(0 if base_port == 0 else base_port + i)
        for i, name in enumerate(("registry", *COUNTRIES))
    }
    state: dict[str, Any] = {
        "format": STATE_FORMAT,
        "complete": False,
        "ports": {name: s.getsockname()[1] for name, s in sockets.items()},
        "seeded": False,
    }
    try:
        state["operator_token"] = _init_registry(data / "registry")
        _save(data / STATE_FILE, state)
    except BaseException:
        for sock in sockets.values():
            sock.close()
        raise
    return state, sockets


def _init_registry(directory: Path) -> str:
    now = int(time.time())
    registry = Registry.init(
        directory,
        root_keys_dir=directory.parent / "registry-offline-root-keys",
        root_keys=1,
        threshold=1,
        now=now,
        actor="demo",
    )
    try:
        token = registry.add_token("demo-operator", actor="demo", now=now)
        (directory.parent / "registry-root.cbor").write_bytes(registry.store.root(1))
    finally:
        registry.close()
    return token


def _node_config(data: Path, country: str) -> NodeConfig:
    return NodeConfig.load(data / "nodes" / country)


def _init_node(data: Path, country: str, port: int, registry_url: str) -> SigningKey:
    directory = data / "nodes" / country
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(data / "registry-root.cbor", directory / "registry-root.cbor")
    config = NodeConfig(
        data_dir=directory,
        country=country,
        authority_name=AUTHORITIES[country],
        registry_urls=(registry_url,),
        registry_root=Path("registry-root.cbor"),
        public_url=f"http://{HOST}:{port}",
        host=HOST,
        port=port,
        insecure_plaintext_key=True,
        registry_refresh_seconds=30.0,
    )
    config.save()
    key = SigningKey.from_seed(generate_seed())
    save_key(config.key_path, key, passphrase=None, insecure_plaintext=True)
    return key


async def _has_registry(app: web.Application) -> bool:
    return app[REGISTRY_KEY].view is not None


async def _wait_for(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 60
    while not await condition():
        if time.monotonic() > deadline:
            raise CliError(f"the demo network did not start: no {what} within 60 s")
        await asyncio.sleep(0.05)


async def _advertise(stack: contextlib.AsyncExitStack, data: Path, ports: dict[str, int]) -> None:
    """Announce each node with zeroconf on the loopback interface only."""
    for country in COUNTRIES:
        key = load_key(_node_config(data, country).key_path, passphrase=None)
        advertiser = Advertiser(
            Advertisement(country=country, kid=key.kid),
            port=ports[country],
            addresses=[HOST],
            interfaces=[HOST],
        )
        try:
            await stack.enter_async_context(advertiser)
        except OSError as e:
            print(f"LAN discovery not available here ({e}); continuing without it", flush=True)
            return


def _banner(data: Path, registry_url: str, ports: dict[str, int], state: dict[str, Any]) -> None:
    lines = [
        "",
        "permitnet demo network is running (Ctrl-C stops it)",
        f"  registry (INCB)      {registry_url}/v1/snapshot",
    ]
    lines.extend(
        f"  {country} node web app     http://{HOST}:{ports[country]}/" for country in COUNTRIES
    )
    lines.append("")
    lines.append("users (all nodes; passwords also in " + str(data / CREDENTIALS_FILE) + "):")
    for country in COUNTRIES:
        for username, entry in state.get("credentials", {}).get(country, {}).items():
            lines.append(
                f"  {country}  {username:12} {entry['password']:18} {entry['roles']:8} "
                f"{entry.get('name', '')}"
            )
    for country, token in state.get("api_tokens", {}).items():
        lines.append(f"  {country}  API token (read, draft): {token}")
    trades = state.get("trades", {})
    if trades:
        lines += [
            "",
            "trades:",
            "  FR imports codeine from IN: certificate, authorization, endorsement, delivered",
            "  DE imports morphine from FR: endorsed 4.8 kg of 5 kg -> FR has a quantity alert",
            "  IN requests fentanyl from DE over its estimate: held, not signed",
        ]
    lines += [
        "",
        (
            f"node API: http://{HOST}:{ports['DE']}/api/v1/openapi.json   "
            f"metrics: http://{HOST}:{ports['DE']}/metrics"
        ),
        "LAN discovery: permitnet discover --interface 127.0.0.1",
    ]
    print("\n".join(lines), flush=True)

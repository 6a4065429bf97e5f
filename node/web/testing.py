"""Helpers for testing the web pages: a node application with only what the pages need.

The application has a store on a real SQLite file, the lifecycle services with a signing key, a
registry holder and a clock, and the pages; no exchange, no API. Forms are filled as a browser
would: fetch the page, take its CSRF token, post.
"""

from __future__ import annotations

import re
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from nacl.pwhash import argon2id

from permitnet.node.accounts import AccountStore, PasswordHasher
from permitnet.node.keystore import SigningKey
from permitnet.node.lifecycle import NodeServices
from permitnet.node.registry_holder import RegistryHolder
from permitnet.node.store import Store
from permitnet.node.web import ACCOUNTS_KEY, NodeKeys, WebSettings, setup_web

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping
    from pathlib import Path

__all__ = ["PASSWORD", "WebNode", "csrf_of", "log_in", "web_node"]

#: The password of every account the helpers create.
PASSWORD: Final = "a long enough passphrase"  # noqa: S105 - a test fixture, never a real one
#: Argon2id at its minimum cost, so that tests run fast (never for a real node).
FAST_HASHER: Final = PasswordHasher(opslimit=argon2id.OPSLIMIT_MIN, memlimit=argon2id.MEMLIMIT_MIN)
STORE_KEY: Final = web.AppKey("permitnet_test_store", Store)
REGISTRY_KEY: Final = web.AppKey("permitnet_test_registry", RegistryHolder)
SERVICES_KEY: Final = web.AppKey("permitnet_test_services", NodeServices)
CLOCK_KEY: Final[web.AppKey[Callable[[], int]]] = web.AppKey("permitnet_test_clock")
_CSRF: Final = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(kw_only=True)
class WebNode:
    """A running node application and a browser-like client for it."""

    client: TestClient[web.Request, web.Application]
    key: SigningKey
    holder: RegistryHolder
    country: str

    @property
    def app(self) -> web.Application:
        """The application."""
        return self.client.app

    @property
    def services(self) -> NodeServices:
        """The node's lifecycle services."""
        return self.app[SERVICES_KEY]

    @property
    def accounts(self) -> AccountStore:
        """The node's accounts."""
        return self.app[ACCOUNTS_KEY]


def make_app(
    database: Path,
    *,
    country: str,
    key: SigningKey,
    holder: RegistryHolder,
    clock: Callable[[], int],
    secure_cookies: bool | None = None,
) -> web.Application:
    """Build the application the web tests run against."""
    app = web.Application()
    app[REGISTRY_KEY] = holder
    app[CLOCK_KEY] = clock

    async def resources(app: web.Application) -> AsyncIterator[None]:
        store = await Store.open(database, clock=clock, synchronous="NORMAL")
        app[STORE_KEY] = store
        app[SERVICES_KEY] = NodeServices(
            store=store,
            country=country,
            authority=f"Competent authority of {country}",
            signing_key=key,
            registry=holder,
        )
        try:
            yield
        finally:
            await store.close()

    app.cleanup_ctx.append(resources)
    setup_web(
        app,
        settings=WebSettings(
            country=country,
            authority_name=f"Competent authority of {country}",
            secure_cookies=secure_cookies,
        ),
        database=database,
        keys=NodeKeys(
            store=STORE_KEY, registry=REGISTRY_KEY, clock=CLOCK_KEY, services=SERVICES_KEY
        ),
        hasher=FAST_HASHER,
    )
    return app


@asynccontextmanager
async def web_node(
    tmp_path: Path,
    *,
    country: str = "DE",
    key: SigningKey | None = None,
    holder: RegistryHolder | None = None,
    clock: Callable[[], int],
    users: Mapping[str, list[str]] | None = None,
    secure_cookies: bool | None = None,
) -> AsyncIterator[WebNode]:
    """Start a node's pages on loopback and create the named users with the given roles."""
    key = key or SigningKey.from_seed(country.encode().ljust(32, b"\x01"))
    holder = holder or RegistryHolder()
    app = make_app(
        tmp_path / f"{country}.sqlite3",
        country=country,
        key=key,
        holder=holder,
        clock=clock,
        secure_cookies=secure_cookies,
    )
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        node = WebNode(client=client, key=key, holder=holder, country=country)
        for username, roles in (users or {}).items():
            await node.accounts.create_user(
                username=username, display_name=username.title(), password=PASSWORD, roles=roles
            )
        yield node


def csrf_of(html: str) -> str:
    """Return the CSRF token of the first form on a page.

    Raises:
        AssertionError: the page has no form with a token.
    """
    match = _CSRF.search(html)
    if match is None:
        raise AssertionError("the page has no form with a CSRF token")
    return match.group(1)


async def log_in(client: TestClient[web.Request, web.Application], username: str) -> str:
    """Log in through the form as ``username`` (after logging out whoever was logged in).

    Returns:
        The session's CSRF token, read from the dashboard.

    Raises:
        AssertionError: the login did not land on the dashboard.
    """
    client.session.cookie_jar.clear()
    page = await client.get("/login")
    token = csrf_of(await page.text())
    response = await client.post(
        "/login",
        data={"csrf_token": token, "username": username, "password": PASSWORD, "next": "/"},
    )
    if response.status != 200 or response.url.path != "/":
        raise AssertionError(f"login of {username} failed: {response.status}")
    return csrf_of(await response.text())

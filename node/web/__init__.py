"""The web pages for competent national authorities, served by the node.

:func:`setup_web` adds the pages, the templates and the static files to the node's application.
The pages are server-rendered and work without JavaScript; a small script only enhances them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp_jinja2
import jinja2

from permitnet.node.accounts import AccountStore, PasswordHasher, ThrottlePolicy
from permitnet.node.web import (
    _format,
    admin_pages,
    auth_pages,
    dashboard,
    declaration_pages,
    document_pages,
    draft_pages,
    overview_pages,
    paper_pages,
    verify_page,
)
from permitnet.node.web._base import (
    ACCOUNTS_KEY,
    NODE_KEYS,
    SETTINGS_KEY,
    NodeKeys,
    WebSettings,
    html_not_found,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from aiohttp import web

__all__ = ["ACCOUNTS_KEY", "NodeKeys", "WebSettings", "setup_web"]

_HERE = Path(__file__).parent


def setup_web(
    app: web.Application,
    *,
    settings: WebSettings,
    database: Path,
    keys: NodeKeys,
    hasher: PasswordHasher | None = None,
    throttle: ThrottlePolicy | None = None,
) -> None:
    """Mount the web pages on the node's application.

    Call after the node has registered the cleanup context that opens its store: the accounts
    are opened after it and closed before it.

    Args:
        app: the node's application.
        settings: the node's country, authority name and cookie policy.
        database: the node's SQLite file; the accounts keep their own tables in it.
        keys: the app keys under which the node keeps its store, registry view and clock.
        hasher: Argon2id parameters (tests pass the minimum to run fast).
        throttle: the login throttling policy.
    """
    app[SETTINGS_KEY] = settings
    app[NODE_KEYS] = keys
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
    )
    env.filters.update(_format.FILTERS)

    async def accounts_ctx(app: web.Application) -> AsyncIterator[None]:
        async with AccountStore.open(database, hasher=hasher, throttle=throttle) as accounts:
            app[ACCOUNTS_KEY] = accounts
            await auth_pages.announce_setup_code(app)
            yield

    app.cleanup_ctx.append(accounts_ctx)
    app.middlewares.append(html_not_found)
    app.router.add_static("/static/web/", _HERE / "static", name="web_static")
    for module in (
        admin_pages,
        auth_pages,
        dashboard,
        declaration_pages,
        draft_pages,
        document_pages,
        overview_pages,
        paper_pages,
        verify_page,
    ):
        app.router.add_routes(module.routes)

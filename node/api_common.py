"""What the API's handler modules share: the prefix, token checks, body and query parsing."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from permitnet.node import tokens
from permitnet.node.errors import ValidationError

if TYPE_CHECKING:
    from aiohttp import web

    from permitnet.node.lifecycle import NodeServices

__all__ = ["DRAFT_PATHS", "PREFIX", "auth", "int_param", "json_body", "services"]

#: The collections a national system lists and creates documents in, and their types
#: (node/api.py routes them, node/openapi.py describes them).
DRAFT_PATHS: Final = {
    "import-certificates": "import_certificate",
    "export-authorizations": "export_authorization",
    "endorsements": "endorsement",
    "cancellations": "cancellation",
    "export-declarations": "export_declaration",
}

#: Every API path starts with this.
PREFIX: Final = "/api/v1"


def services(request: web.Request) -> NodeServices:
    """Return the node's lifecycle services."""
    from permitnet.node.app import SERVICES_KEY  # noqa: PLC0415 - app imports this module

    return request.app[SERVICES_KEY]


async def auth(request: web.Request, scope: str) -> tokens.ApiToken:
    """Return the request's bearer token if it holds ``scope``.

    Raises:
        UnauthorizedError: no valid token.
        ForbiddenError: the token lacks the scope.
    """
    token = await tokens.authenticate(services(request).store, request.headers.get("Authorization"))
    tokens.require_scope(token, scope)
    return token


async def json_body(request: web.Request) -> tuple[bytes, Any]:
    """Return the raw body and its parsed JSON.

    Raises:
        ValidationError: another content type, or not JSON.
    """
    if request.content_type != "application/json":
        raise ValidationError(f"Content-Type must be application/json, got {request.content_type}")
    raw = await request.read()
    try:
        return raw, json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValidationError(f"the request body is not valid JSON: {e}") from e


def int_param(request: web.Request, name: str, default: int, *, lo: int, hi: int) -> int:
    """Return an integer query parameter within ``lo..hi``.

    Raises:
        ValidationError: not an integer, or out of range.
    """
    value = request.query.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError as e:
        raise ValidationError(f"{name} must be an integer, got {value!r}") from e
    if not lo <= number <= hi:
        raise ValidationError(f"{name} must be between {lo} and {hi}, got {number}")
    return number

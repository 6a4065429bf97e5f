"""Log in, log out, first-run setup, and the administrator's account pages."""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Final

from aiohttp import web

from permitnet.node.accounts import LoginThrottledError, Permission, Role
from permitnet.node.errors import ConflictError, NodeError, UnauthorizedError, ValidationError
from permitnet.node.web._base import (
    ACCOUNTS_KEY,
    PageContext,
    audit,
    clear_session_cookie,
    client_address,
    page,
    render,
    safe_next,
    session_cookie_name,
    set_session_cookie,
)

__all__ = ["SETUP_CODE_KEY", "routes"]

_log = logging.getLogger(__name__)
routes = web.RouteTableDef()

#: The one-time code that lets the first administrator be created; logged at start-up.
SETUP_CODE_KEY: Final = web.AppKey("permitnet_web_setup_code", str)


@routes.get("/login", name="login")
@page(permission=None)
async def login_form(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """The login form."""
    if ctx.session is not None:
        raise web.HTTPSeeOther(safe_next(request.query.get("next", "/")))
    return render(request, ctx, "login.html", next=safe_next(request.query.get("next", "/")))


@routes.post("/login")
@page(permission=None)
async def login(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Check the password; on success open a new session and go where the person was going."""
    username, password = ctx.field("username"), ctx.form.get("password") if ctx.form else ""
    password = password if isinstance(password, str) else ""
    target = safe_next(ctx.field("next", "/"))
    address = client_address(request)
    try:
        token, session = await request.app[ACCOUNTS_KEY].login(username, password, address=address)
    except LoginThrottledError as e:
        await audit(
            request,
            username[:64] or "-",
            "login throttled",
            f"account:{username[:64]}",
            {"address": address},
        )
        response = render(
            request, ctx, "login.html", status=429, error=str(e), next=target, username=username
        )
        response.headers["Retry-After"] = str(e.retry_after)
        return response
    except UnauthorizedError as e:
        await audit(
            request,
            username[:64] or "-",
            "login failed",
            f"account:{username[:64]}",
            {"address": address},
        )
        return render(
            request, ctx, "login.html", status=401, error=str(e), next=target, username=username
        )
    await audit(
        request, session.account.username, "login", f"account:{username}", {"address": address}
    )
    response = web.Response(status=303, headers={"Location": target})
    set_session_cookie(request, response, token)
    return response


@routes.post("/logout", name="logout")
@page(permission=Permission.VIEW)
async def logout(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """End the session."""
    token = request.cookies.get(session_cookie_name(request), "")
    await request.app[ACCOUNTS_KEY].logout(token)
    await audit(request, ctx.username, "logout", f"account:{ctx.username}", {})
    response = web.Response(
        status=303, headers={"Location": str(request.app.router["login"].url_for())}
    )
    clear_session_cookie(request, response)
    return response


@routes.get("/account", name="account")
@page(permission=Permission.VIEW)
async def account_form(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """The person's own account: name, roles, and a form to change the password."""
    return render(request, ctx, "account.html", title="My account")


@routes.post("/account")
@page(permission=Permission.VIEW)
async def change_password(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Change one's own password; every session ends, so the person logs in again."""
    current = ctx.form.get("current_password") if ctx.form else None
    try:
        await request.app[ACCOUNTS_KEY].change_own_password(
            ctx.username, current if isinstance(current, str) else "", _password(ctx)
        )
    except LoginThrottledError as e:
        return render(request, ctx, "account.html", status=429, error=str(e))
    except (UnauthorizedError, ValidationError) as e:
        return render(request, ctx, "account.html", status=e.status_hint, error=str(e))
    await audit(request, ctx.username, "change own password", f"account:{ctx.username}", {})
    response = web.Response(
        status=303, headers={"Location": str(request.app.router["login"].url_for())}
    )
    clear_session_cookie(request, response)
    return response


@routes.get("/setup", name="setup")
@page(permission=None)
async def setup_form(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """First run: create the first administrator with the code the node logged at start-up."""
    if await request.app[ACCOUNTS_KEY].count_users():
        raise web.HTTPSeeOther(str(request.app.router["login"].url_for()))
    return render(request, ctx, "setup.html")


@routes.post("/setup")
@page(permission=None)
async def setup(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Create the first administrator; refused once any account exists."""
    accounts = request.app[ACCOUNTS_KEY]
    if await accounts.count_users():
        raise ConflictError("this node already has accounts: ask an administrator")
    expected = request.app.get(SETUP_CODE_KEY, "")
    if not expected or not hmac.compare_digest(ctx.field("setup_code"), expected):
        return render(
            request,
            ctx,
            "setup.html",
            status=403,
            error="the setup code is wrong: it is in the node's log",
        )
    try:
        account = await accounts.create_user(
            username=ctx.field("username"),
            display_name=ctx.field("display_name"),
            password=_password(ctx),
            roles=[Role.ADMIN.value],
        )
    except ValidationError as e:
        return render(request, ctx, "setup.html", status=400, error=str(e), values=ctx.form)
    await audit(
        request, account.username, "create first administrator", f"account:{account.username}", {}
    )
    raise web.HTTPSeeOther(str(request.app.router["login"].url_for()))


def _password(ctx: PageContext) -> str:
    value = ctx.form.get("password") if ctx.form else None
    confirm = ctx.form.get("password_confirm") if ctx.form else None
    if not isinstance(value, str) or value != confirm:
        raise ValidationError("the two passwords differ")
    return value


async def announce_setup_code(app: web.Application) -> None:
    """On start-up with no accounts, make a one-time setup code and log it."""
    if await app[ACCOUNTS_KEY].count_users():
        return
    code = secrets.token_hex(6)
    app[SETUP_CODE_KEY] = code
    _log.warning("no web accounts yet: open /setup and enter the setup code %s", code)


@routes.get("/admin/users", name="users")
@page(permission=Permission.ADMINISTER)
async def users(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Every account, with a form to add one."""
    return render(
        request,
        ctx,
        "users.html",
        users=await request.app[ACCOUNTS_KEY].list_users(),
        roles=list(Role),
    )


@routes.post("/admin/users")
@page(permission=Permission.ADMINISTER)
async def add_user(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Create an account."""
    accounts = request.app[ACCOUNTS_KEY]
    try:
        account = await accounts.create_user(
            username=ctx.field("username"),
            display_name=ctx.field("display_name"),
            password=_password(ctx),
            roles=ctx.fields("roles"),
        )
    except (ValidationError, ConflictError) as e:
        return render(
            request,
            ctx,
            "users.html",
            status=e.status_hint,
            error=str(e),
            users=await accounts.list_users(),
            roles=list(Role),
            values=ctx.form,
        )
    await audit(
        request,
        ctx.username,
        "create account",
        f"account:{account.username}",
        {"roles": sorted(r.value for r in account.roles)},
    )
    raise web.HTTPSeeOther(str(request.app.router["users"].url_for()))


@routes.post("/admin/users/{username}", name="user")
@page(permission=Permission.ADMINISTER)
async def change_user(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Change an account's roles, (de)activate it, or set a new password."""
    accounts = request.app[ACCOUNTS_KEY]
    username = request.match_info["username"]
    action = ctx.field("action")
    try:
        if action == "roles":
            await accounts.update_user(username, roles=ctx.fields("roles"))
            detail = {"roles": sorted(ctx.fields("roles"))}
        elif action in {"deactivate", "activate"}:
            if username == ctx.username and action == "deactivate":
                raise ValidationError("you cannot deactivate your own account")
            await accounts.update_user(username, active=action == "activate")
            detail = {}
        elif action == "password":
            await accounts.set_password(username, _password(ctx))
            detail = {}
        else:
            raise ValidationError(f"unknown action {action!r}")
    except NodeError as e:
        return render(
            request,
            ctx,
            "users.html",
            status=e.status_hint,
            error=str(e),
            users=await accounts.list_users(),
            roles=list(Role),
        )
    await audit(request, ctx.username, f"account {action}", f"account:{username}", detail)
    raise web.HTTPSeeOther(str(request.app.router["users"].url_for()))

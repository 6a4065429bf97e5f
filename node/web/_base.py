"""What every page shares: app keys, the ``page`` decorator, sessions, CSRF, rendering, errors.

Each handler is wrapped by :func:`page`, which loads the session from its cookie, refuses people
without the permission the page needs, parses a POSTed form and checks its CSRF token before the
handler sees it, and turns a :class:`NodeError` or :class:`ProtocolError` into a plain page that
says what went wrong. Pages are scoped this way, not by a middleware, so that the node's JSON API
and peer endpoints are untouched by anything the web pages need.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import aiohttp_jinja2
from aiohttp import web

from permitnet.node.accounts import AccountStore, Permission, Session, require
from permitnet.node.errors import ForbiddenError, NodeError, UnauthorizedError, ValidationError
from permitnet.protocol import ProtocolError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from multidict import MultiDictProxy

    from permitnet.node.config import NodeConfig
    from permitnet.node.lifecycle import NodeServices
    from permitnet.node.registry_holder import RegistryHolder
    from permitnet.node.store import Store

__all__ = [
    "ACCOUNTS_KEY",
    "NODE_KEYS",
    "SETTINGS_KEY",
    "NodeKeys",
    "PageContext",
    "WebSettings",
    "audit",
    "date_today",
    "now",
    "page",
    "registry",
    "render",
    "safe_next",
    "services",
    "store",
]

_log = logging.getLogger(__name__)

SESSION_COOKIE: Final = "pn_session"
#: Under HTTPS the cookie takes the ``__Host-`` prefix: Secure, no Domain, Path=/ enforced.
SECURE_SESSION_COOKIE: Final = "__Host-pn_session"
#: The CSRF token of forms shown to people not logged in (login, verify): a double-submit cookie.
FORM_COOKIE: Final = "pn_form"
CSRF_FIELD: Final = "csrf_token"

_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSettings:
    """What the pages need to know about the node they run on."""

    country: str
    authority_name: str
    #: ``None``: mark cookies Secure when the request came over HTTPS. ``True`` behind a
    #: TLS-terminating proxy, where the node itself sees plain HTTP.
    secure_cookies: bool | None = None
    #: The largest upload the verify page accepts, in bytes.
    max_upload_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeKeys:
    """The app keys under which the node keeps what the pages read (see ``node/app.py``)."""

    store: web.AppKey[Store]
    registry: web.AppKey[RegistryHolder]
    clock: web.AppKey[Callable[[], int]]
    services: web.AppKey[NodeServices]
    #: The node's configuration, shown read-only to administrators (None: not shown).
    config: web.AppKey[NodeConfig] | None = None


ACCOUNTS_KEY: Final = web.AppKey("permitnet_web_accounts", AccountStore)
SETTINGS_KEY: Final = web.AppKey("permitnet_web_settings", WebSettings)
NODE_KEYS: Final = web.AppKey("permitnet_web_node_keys", NodeKeys)


def store(request: web.Request) -> Store:
    """Return the node's open store."""
    return request.app[request.app[NODE_KEYS].store]


def services(request: web.Request) -> NodeServices:
    """Return the node's lifecycle services (drafts, approval, balances, alerts)."""
    return request.app[request.app[NODE_KEYS].services]


def registry(request: web.Request) -> RegistryHolder:
    """Return the node's holder of the current verified registry view."""
    return request.app[request.app[NODE_KEYS].registry]


def now(request: web.Request) -> int:
    """Return the node's clock reading (Unix seconds)."""
    return request.app[request.app[NODE_KEYS].clock]()


def date_today(request: web.Request) -> dt.date:
    """Return the node's calendar date (UTC), for defaults and date checks on forms."""
    return dt.datetime.fromtimestamp(now(request), tz=dt.UTC).date()


async def audit(
    request: web.Request, actor: str, action: str, subject: str, detail: dict[str, Any]
) -> None:
    """Append a row with the person's user name to the node's hash-chained audit log."""
    async with store(request).transaction() as tx:
        await tx.audit(actor, action, subject, {"via": "web", **detail})


@dataclass(frozen=True, slots=True, kw_only=True)
class PageContext:
    """What :func:`page` hands a handler: the session (if any) and the checked form."""

    session: Session | None
    form: MultiDictProxy[str | bytes | bytearray | web.FileField] | None
    form_token: str

    @property
    def username(self) -> str:
        """The logged-in person's user name (for the audit log).

        Raises:
            UnauthorizedError: nobody is logged in.
        """
        if self.session is None:
            raise UnauthorizedError("you are not logged in")
        return self.session.account.username

    @property
    def csrf_token(self) -> str:
        """The token every form on the page must carry."""
        return self.session.csrf_token if self.session else self.form_token

    def field(self, name: str, default: str = "") -> str:
        """Return a text field of the posted form, stripped; ``default`` when absent."""
        if self.form is None:
            return default
        value = self.form.get(name)
        return value.strip() if isinstance(value, str) else default

    def values(self) -> dict[str, str]:
        """Return the posted text fields, as a form is shown again with what was typed."""
        return {k: v for k, v in (self.form or {}).items() if isinstance(v, str)}

    def fields(self, name: str) -> list[str]:
        """Return every value of a repeated text field (checkboxes)."""
        if self.form is None:
            return []
        return [v for v in self.form.getall(name, []) if isinstance(v, str)]


class UploadTooLargeError(ValidationError):
    """A form or upload larger than the node accepts (413)."""

    status_hint = 413
    code = "too_large"


Handler: TypeAlias = "Callable[[web.Request, PageContext], Awaitable[web.StreamResponse]]"


_LOOPBACK: Final = frozenset({"127.0.0.1", "::1"})


def client_address(request: web.Request) -> str:
    """The address a login attempt comes from, for throttling.

    Behind a reverse proxy on the same machine (the documented nginx setup) every request
    arrives from loopback, so the proxy's ``X-Forwarded-For`` (its last entry, the one the proxy
    itself appended) names the client. From any other peer the header is ignored: a remote
    client cannot choose the address it is throttled under.
    """
    remote = request.remote or "unknown"
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded and remote in _LOOPBACK:
        last = forwarded.split(",")[-1].strip()[:64]
        return last or remote
    return remote


def _own_origins(request: web.Request) -> set[str]:
    # Behind a TLS-terminating proxy the node sees http while the browser says https.
    origins = {f"{request.scheme}://{request.host}"}
    if secure(request):
        origins.add(f"https://{request.host}")
    return origins


def session_cookie_name(request: web.Request) -> str:
    """The session cookie's name: ``__Host-`` prefixed when cookies are Secure."""
    return SECURE_SESSION_COOKIE if secure(request) else SESSION_COOKIE


def secure(request: web.Request) -> bool:
    """Whether cookies for this request must be marked Secure."""
    setting = request.app[SETTINGS_KEY].secure_cookies
    return (request.secure or _proxied_https(request)) if setting is None else setting


def _proxied_https(request: web.Request) -> bool:
    # A reverse proxy on this machine that terminated TLS says so; nobody else is believed.
    return request.remote in _LOOPBACK and request.headers.get("X-Forwarded-Proto") == "https"


def set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    """Set the session cookie: HttpOnly, SameSite=Strict, Secure under HTTPS, no Max-Age."""
    response.set_cookie(
        session_cookie_name(request),
        token,
        httponly=True,
        samesite="Strict",
        secure=secure(request),
        path="/",
    )


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """Remove the session cookie from the browser."""
    response.del_cookie(session_cookie_name(request), path="/")


async def load_session(request: web.Request) -> Session | None:
    """Return the live session named by the request's cookie, or None."""
    token = request.cookies.get(session_cookie_name(request))
    if not token:
        return None
    try:
        return await request.app[ACCOUNTS_KEY].session(token)
    except UnauthorizedError:
        return None


def page(
    permission: Permission | None = Permission.VIEW,
) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """Wrap a page handler with session, permission, CSRF and error handling.

    Args:
        permission: what the page needs; ``None`` for public pages (login, verify).
    """

    def wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def run(request: web.Request) -> web.StreamResponse:
            session = await load_session(request)
            form_token = request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(32)
            ctx = PageContext(session=session, form=None, form_token=form_token)
            try:
                if permission is not None:
                    _authorize(request, session, permission)
                if request.method == "POST":
                    ctx = await _checked_form(request, ctx)
                response: web.StreamResponse = await handler(request, ctx)
            except NodeError as e:
                response = error_page(request, ctx, e.status_hint, str(e))
            except ProtocolError as e:
                response = error_page(request, ctx, e.status_hint, str(e))
            except web.HTTPException:
                raise
            except Exception:  # noqa: BLE001 - the last resort: log it, show a plain page
                _log.exception("page %s %s failed", request.method, request.path)
                response = error_page(
                    request,
                    ctx,
                    500,
                    "an unexpected error occurred on this node and has been logged. Each change "
                    "is stored whole or not at all: look at the document before trying again.",
                )
            for name, value in _SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            if session is None and FORM_COOKIE not in request.cookies:
                response.set_cookie(
                    FORM_COOKIE,
                    form_token,
                    httponly=True,
                    samesite="Strict",
                    secure=secure(request),
                    path="/",
                )
            return response

        run.__doc__ = handler.__doc__
        return run

    return wrap


def _authorize(request: web.Request, session: Session | None, permission: Permission) -> None:
    if session is None:
        if request.method == "GET":
            raise web.HTTPSeeOther(_login_url(request))
        raise UnauthorizedError("your session has ended: log in again, then repeat the action")
    require(session.account, permission)


def _login_url(request: web.Request) -> str:
    return str(request.app.router["login"].url_for().with_query(next=request.path_qs))


async def _checked_form(request: web.Request, ctx: PageContext) -> PageContext:
    origin = request.headers.get("Origin")
    if origin is not None and origin not in _own_origins(request):
        raise ForbiddenError(f"this form was sent from another site ({origin}), not this node")
    if request.content_type == "multipart/form-data":
        # Uploads to the verify page (a photo of a QR code) may exceed the node's API body
        # limit; they get their own, larger limit. Other forms keep the node's limit.
        request = request.clone(client_max_size=request.app[SETTINGS_KEY].max_upload_bytes)
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge as e:
        raise UploadTooLargeError(
            "the upload is larger than this node accepts "
            f"({request.app[SETTINGS_KEY].max_upload_bytes // (1024 * 1024)} MB at most)"
        ) from e
    submitted = form.get(CSRF_FIELD)
    submitted = submitted if isinstance(submitted, str) else None
    if ctx.session is not None:
        ctx.session.check_csrf(submitted)
    else:
        cookie = request.cookies.get(FORM_COOKIE)
        if not cookie or not submitted or not hmac.compare_digest(submitted, cookie):
            raise ForbiddenError(
                "this form was not sent from a page of this node (missing or wrong CSRF token); "
                "reload the page and try again"
            )
    return PageContext(session=ctx.session, form=form, form_token=ctx.form_token)


def safe_next(value: str) -> str:
    r"""Return ``value`` if it is a path on this node, else ``"/"``: never an open redirect.

    "//host", "https://host" and "/\host" (which some browsers read as "//host") are refused.
    """
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def render(
    request: web.Request,
    ctx: PageContext,
    template: str,
    *,
    status: int = 200,
    **context: Any,
) -> web.Response:
    """Render a page template with what the layout needs."""
    settings = request.app[SETTINGS_KEY]
    account = ctx.session.account if ctx.session else None
    return aiohttp_jinja2.render_template(
        template,
        request,
        {
            "account": account,
            "csrf_token": ctx.csrf_token,
            "country": settings.country,
            "authority_name": settings.authority_name,
            "Permission": Permission,
            "path": request.path,
            **context,
        },
        status=status,
    )


_TITLES: Final = {
    400: "The request could not be used",
    401: "Please log in",
    403: "Not allowed",
    404: "Not found",
    409: "Not possible now",
    413: "Too large",
    422: "Refused by the Convention rules",
    429: "Too many attempts",
}


#: Paths that belong to machines (JSON API, peers, operations): their errors are not pages.
_MACHINE_PREFIXES: Final = ("/api/", "/peer/", "/healthz", "/readyz", "/metrics", "/static/")


@web.middleware
async def html_not_found(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer a browser's request for a page that does not exist with a plain 404 page."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        wants_page = "text/html" in request.headers.get("Accept", "")
        if request.method != "GET" or not wants_page or request.path.startswith(_MACHINE_PREFIXES):
            raise
        ctx = PageContext(session=await load_session(request), form=None, form_token="")
        response = error_page(request, ctx, 404, f"there is no page {request.path} on this node")
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def error_page(request: web.Request, ctx: PageContext, status: int, message: str) -> web.Response:
    """Render a plain page that says what went wrong, with the given status."""
    if status >= 500:
        _log.error("page %s failed: %s", request.path, message)
    return render(
        request,
        ctx,
        "error.html",
        status=status,
        title=_TITLES.get(status, "Something went wrong"),
        message=message,
    )

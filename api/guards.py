"""Checks every request passes before any body is read or any route runs (pure ASGI, outermost).

1. *Host allow-list* (DNS rebinding): the ``Host`` header must name this server: a loopback name (``localhost``,
   ``127.0.0.1``, ``[::1]``, ...), the address it is bound to, or one of ``DUPESIFT_ALLOWED_HOSTS``. A page on
   ``evil.example`` whose name an attacker re-points at 127.0.0.1 sends ``Host: evil.example`` and is refused
   (421). A server bound to every address (``0.0.0.0``) with no allowed hosts configured accepts any Host: its
   token protects it, and a rebound page never has the token's cookie.
2. *Token*: on a non-loopback bind every request carries ``DUPESIFT_API_TOKEN`` (``Authorization: Bearer`` or
   the ``/ui/login`` cookie), checked before the body is read: an unauthenticated 49 MB body is refused with
   401 without being read.
3. *Same origin* (CSRF): a state-changing request that a browser sent from a page (``Origin`` or ``Referer``)
   must come from an allowed host and from this server's own ``Host`` (a page on ``localhost:3000`` is another
   site than ``127.0.0.1:8000``). Requests with neither header (curl, scripts) cannot be forged by a page.
"""
from __future__ import annotations

import ipaddress
import json
import secrets
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback", "localhost.localdomain"})
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})
TOKEN_COOKIE = "dupesift_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OPEN_PATHS = frozenset({"/ui/login"})  # the login form itself needs no token


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this machine's loopback."""
    host = host.strip().lower().rstrip(".")
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(netloc: str) -> str:
    """The host of ``host[:port]`` (``[v6]:port`` too), lower case, without a trailing dot."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1:netloc.find("]")] if "]" in netloc else netloc
    return netloc.rsplit(":", 1)[0].rstrip(".") if netloc.count(":") == 1 else netloc.rstrip(".")


class HostAllowList:
    """The host names a request may address this server by (``None``: any, see the module docstring)."""

    def __init__(self, bind_host: str, configured: str = "") -> None:
        extra = {host_name(h) for h in configured.replace(",", " ").split() if h.strip()}
        self.any = bind_host.strip("[]") in WILDCARD_BINDS and not extra
        self.names = extra | ({host_name(bind_host)} if bind_host.strip("[]") not in WILDCARD_BINDS else set())

    def allows(self, host: str) -> bool:
        name = host_name(host)
        return bool(name) and (self.any or is_loopback(name) or name in self.names or name.strip("[]") in self.names)


class Guard:
    """Host allow-list, token and same-origin checks (see the module docstring), before the app sees the body."""

    def __init__(self, app: ASGIApp, *, hosts: HostAllowList, token: str | None, auth_required: bool) -> None:
        self.app, self.hosts, self.token, self.auth_required = app, hosts, token or "", auth_required

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self.refusal(scope, headers)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message, extra = refusal
        if scope["path"].startswith("/ui"):  # the web UI's refusals are pages, as its other errors are
            from api.webpage import error_page  # late: the templates are not needed for the JSON API

            headers = {k.decode(): v.decode() for k, v in extra} | {"connection": "close"}
            await error_page(Request(scope), status, message, headers=headers)(scope, receive, send)
            return
        body = json.dumps({"detail": message}).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"), *extra]})  # the body is never read: close rather than keep alive
        await send({"type": "http.response.body", "body": body})

    def refusal(self, scope: Scope, headers: Headers) -> tuple[int, str, list] | None:
        host = headers.get("host", "")
        if not self.hosts.allows(host):
            return 421, (f"this server does not answer to the host name {host[:100]!r}: use http://127.0.0.1 "
                         "or add the name to DUPESIFT_ALLOWED_HOSTS"), []
        if self.auth_required and scope["path"] not in OPEN_PATHS and not self._has_token(headers):
            return 401, "missing or wrong bearer token (Authorization: Bearer $DUPESIFT_API_TOKEN)", [
                (b"www-authenticate", b"Bearer")]
        if scope["method"] in UNSAFE_METHODS:
            source = headers.get("origin") or headers.get("referer")
            if source and not self._same_origin(source, headers):
                return 403, (f"cross-site request refused: it was sent from {source[:200]!r}, not from this "
                             f"server ({host[:100]}); use the web UI served here"), []
        return None

    def _has_token(self, headers: Headers) -> bool:
        auth = headers.get("authorization", "")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else _cookie(headers, TOKEN_COOKIE)
        return bool(given) and bool(self.token) and secrets.compare_digest(given.encode(), self.token.encode())

    def _same_origin(self, source: str, headers: Headers) -> bool:
        try:
            netloc = urlsplit(source).netloc.lower()
        except ValueError:
            return False
        # X-Forwarded-Host (a reverse proxy's) is safe to accept: a page cannot set it without a CORS preflight
        own = {h.strip().lower() for h in (headers.get("host", ""), headers.get("x-forwarded-host", ""))} - {""}
        return bool(netloc) and netloc in own and self.hosts.allows(netloc)


def _cookie(headers: Headers, name: str) -> str:
    try:
        jar = SimpleCookie(headers.get("cookie", ""))
    except CookieError:
        return ""
    return jar[name].value if name in jar else ""

"""Who may look and act: the shared token (cookie or bearer), CSRF tokens, security headers.

Without a token the dashboard only binds to loopback (checked at start-up, see `app.py`).
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Middleware

SESSION_COOKIE = "outbox_session"
CSRF_COOKIE = "outbox_csrf"
OPEN_PATHS = ("/login", "/static/")
# The CSRF cookie's value for the request being handled (each request runs in its own task).
_CSRF_SEED: contextvars.ContextVar[str] = contextvars.ContextVar("csrf_seed", default="")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _digest(key: str | bytes, purpose: str) -> str:
    raw = key.encode() if isinstance(key, str) else key
    return hmac.new(raw, purpose.encode(), hashlib.sha256).hexdigest()


class Guard:
    """Checks requests against the token; signs and checks CSRF tokens."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self._csrf_key = secrets.token_bytes(32)  # per process: a restart invalidates forms

    def session_value(self) -> str:
        """What the session cookie holds: derived from the token, never the token itself."""
        assert self.token is not None
        return _digest(self.token, "outbox-dashboard-session")

    def token_matches(self, offered: str) -> bool:
        assert self.token is not None
        return hmac.compare_digest(offered.encode(), self.token.encode())

    def authenticated(self, request: web.Request) -> bool:
        if self.token is None:
            return True
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return self.token_matches(header.removeprefix("Bearer ").strip())
        cookie = request.cookies.get(SESSION_COOKIE, "")
        return hmac.compare_digest(cookie.encode(), self.session_value().encode())

    def csrf_token(self) -> str:
        """For the request being handled (its CSRF cookie, or the one it is about to get)."""
        return _digest(self._csrf_key, _CSRF_SEED.get())

    def csrf_valid(self, request: web.Request, offered: str) -> bool:
        seed = request.cookies.get(CSRF_COOKIE, "")
        expected = _digest(self._csrf_key, seed)
        return bool(seed) and hmac.compare_digest(offered.encode(), expected.encode())


def middleware(guard: Guard) -> Middleware:
    @web.middleware
    async def guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        seed = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        _CSRF_SEED.set(seed)
        try:
            response = await _checked(guard, request, handler)
        except web.HTTPException as error:
            error.headers.update(HEADERS)
            raise
        response.headers.update(HEADERS)
        if CSRF_COOKIE not in request.cookies:
            set_cookie(response, CSRF_COOKIE, seed)
        return response

    return guarded


async def _checked(guard: Guard, request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(OPEN_PATHS) or guard.authenticated(request):
        return await handler(request)
    if request.method == "GET":
        raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
    raise web.HTTPForbidden(text="forbidden: log in first (OUTBOX_DASHBOARD_TOKEN)")


def set_cookie(response: web.StreamResponse, name: str, value: str) -> None:
    # Secure: browsers keep it off plain http, except for http://localhost / 127.0.0.1.
    response.set_cookie(name, value, path="/", secure=True, httponly=True, samesite="Strict")


def safe_next(target: str | None) -> str:
    """Only a path on this site: never `//host` or `https://…` (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target

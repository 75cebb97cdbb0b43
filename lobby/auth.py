"""WebSocket authentication: the same two credentials as the HTTP API.

Game clients send `Authorization: Token <key>`; browsers send their session cookie. A browser sends
its cookie whatever page opened the socket, so the cookie is believed only when the socket's
Origin is this service's own, scheme, host and port (cross-site WebSocket hijacking). A token
header is not sent by browsers on their own, so it needs no such check.
"""

from urllib.parse import urlsplit

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import validate_host

from lobby.authentication import user_for_authorization


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin1")
    return None


@database_sync_to_async
def _user_for_token(header: str):
    return user_for_authorization(header) or AnonymousUser()


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _secure(scope) -> bool:
    """Whether the page's side of this socket is HTTPS: wss itself, or a TLS proxy's header."""
    if scope.get("scheme") in ("wss", "https"):
        return True
    proxy_header = settings.SECURE_PROXY_SSL_HEADER
    if proxy_header:
        name, value = proxy_header
        wanted = name.removeprefix("HTTP_").lower().replace("_", "-").encode()
        return _header(scope, wanted) == value
    return False


def _origin(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    parts = urlsplit(f"{scheme}://{netloc}")
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if not parts.hostname or parts.username or parts.path:
        return None
    return scheme, parts.hostname.lower(), port


def _origin_is_ours(scope) -> bool:
    """Same origin as Django's CSRF check: the Origin is this service's own scheme, host and
    port (the Host the socket dialled, on one of ALLOWED_HOSTS), or one of CSRF_TRUSTED_ORIGINS.
    Host alone is not enough: another port on the same host is another application."""
    origin = _header(scope, b"origin")
    if not origin:
        return False
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    scheme, _, netloc = origin.partition("://")
    theirs = _origin(scheme, netloc) if scheme in _DEFAULT_PORTS else None
    host = _header(scope, b"host")
    ours = _origin("https" if _secure(scope) else "http", host) if host else None
    if theirs is None or theirs != ours:
        return False
    allowed = settings.ALLOWED_HOSTS or (
        ["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else []
    )
    return validate_host(theirs[1], allowed)


class TokenOrSessionMiddleware:
    """Sets `scope["user"]` from a token header, else from the session when the origin is ours."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        header = _header(scope, b"authorization")
        if header is not None:
            scope["user"] = await _user_for_token(header)
        elif not _origin_is_ours(scope):
            scope["user"] = AnonymousUser()
        return await self.inner(scope, receive, send)


def PlayerAuthMiddlewareStack(inner):
    # AuthMiddlewareStack sets a lazy session user first; ours then overrides it.
    return AuthMiddlewareStack(TokenOrSessionMiddleware(inner))

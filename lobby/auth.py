"""WebSocket authentication: the same two credentials as the HTTP API.

Game clients send `Authorization: Token <key>`; browsers send their session cookie. A browser sends
its cookie whatever page opened the socket, so the cookie is believed only when the socket's
Origin is one of our hosts (cross-site WebSocket hijacking). A token header is not sent by
browsers on their own, so it needs no such check.
"""

from urllib.parse import urlparse

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


def _origin_is_ours(scope) -> bool:
    origin = _header(scope, b"origin")
    if origin is None:
        return False
    host = urlparse(origin).hostname
    allowed = settings.ALLOWED_HOSTS or (
        ["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else []
    )
    return bool(host) and validate_host(host, allowed)


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

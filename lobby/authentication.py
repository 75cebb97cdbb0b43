"""Token authentication, one lookup for every door: DRF views, the events long-poll, sockets.

Game clients send `Authorization: Token <key>`. The player is loaded with the user in the same
query: clients poll, and every request needs both.
"""

import contextlib

from django.core.exceptions import ObjectDoesNotExist
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

TOKEN_KEYWORD = "Token"  # noqa: S105 - the header keyword, not a secret


def user_for_token_key(key: str):
    """The active user holding this API token (its player cached on it), or None."""
    token = Token.objects.select_related("user__player").filter(key=key).first()
    if token is None or not token.user.is_active:
        return None
    # A Django user without a player yet has none here: player_for_user makes one.
    with contextlib.suppress(ObjectDoesNotExist):
        token.user._player_cache = token.user.player
    return token.user


def user_for_authorization(header: str):
    """The user of an `Authorization: Token <key>` header value, or None (another scheme, no
    key, an unknown or inactive token)."""
    keyword, _, key = header.partition(" ")
    key = key.strip()
    if keyword != TOKEN_KEYWORD or not key:
        return None
    return user_for_token_key(key)


class PlayerTokenAuthentication(TokenAuthentication):
    """DRF's token authentication through `user_for_token_key`."""

    def authenticate_credentials(self, key):
        user = user_for_token_key(key)
        if user is None:
            raise AuthenticationFailed("Invalid token.")
        return user, None

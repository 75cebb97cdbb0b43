import contextlib

from django.core.exceptions import ObjectDoesNotExist
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed


class PlayerTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, loading the player with the user in the same query: game
    clients poll, and every request needs both."""

    def authenticate_credentials(self, key):
        token = Token.objects.select_related("user__player").filter(key=key).first()
        if token is None:
            raise AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        # A Django user without a player yet has none here: player_for_user makes one.
        with contextlib.suppress(ObjectDoesNotExist):
            token.user._player_cache = token.user.player
        return token.user, token

from rest_framework.permissions import BasePermission


class IsPlayer(BasePermission):
    """Authenticated, and so a player: the API's authentication (lobby.authentication) found the
    caller's player, making one for a Django user on first use. This class only checks."""

    message = "Sign in as a player first: send 'Authorization: Token <key>' or use a session."

    def has_permission(self, request, view):
        return getattr(request, "player", None) is not None

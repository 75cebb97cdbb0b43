from rest_framework.permissions import BasePermission


class IsPlayer(BasePermission):
    """Authenticated, and a player (every guest is; a Django user becomes one on first use)."""

    message = "Sign in as a player first: send 'Authorization: Token <key>' or use a session."

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        from lobby.selectors import player_for_user
        from lobby.services import player_touch

        request.player = player_for_user(user)
        player_touch(request.player)
        return True

"""Rate limits, counted in the shared cache (Redis on the services stack) across processes."""

from rest_framework.throttling import SimpleRateThrottle

from lobby.ip import client_ip


class PlayerThrottle(SimpleRateThrottle):
    scope = "player"

    def get_cache_key(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class IpThrottle(SimpleRateThrottle):
    """Per client address (through trusted proxies only), whoever is signed in."""

    scope = "ip"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request)}


class GuestCreationThrottle(IpThrottle):
    scope = "guest"


class JoinCodeThrottle(PlayerThrottle):
    """Tight, so that guessing join codes is hopeless (see lobby.models.JOIN_CODE_ALPHABET)."""

    scope = "join_code"

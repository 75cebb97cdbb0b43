"""A player's public IP, which the relay is told to expect: the request's client address.

`X-Forwarded-For` is believed only when the request comes from one of `TRUSTED_PROXIES`; anyone
can send that header, and a forged one would let a player claim another's relay seat address.
"""

from django.conf import settings
from ipware import get_client_ip


def client_ip(request) -> str:
    remote = request.META.get("REMOTE_ADDR") or "0.0.0.0"
    trusted = settings.TRUSTED_PROXIES
    if not trusted or remote not in trusted:
        return remote
    ip, _ = get_client_ip(
        request,
        proxy_trusted_ips=trusted,
        request_header_order=["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"],
    )
    return ip or remote

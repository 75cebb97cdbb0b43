"""A player's public IP, which the relay is told to expect: the request's client address.

`X-Forwarded-For` is believed only when the request comes from one of `TRUSTED_PROXIES`; anyone
can send that header, and a forged one would let a player claim another's relay seat address.
"""

import ipaddress

from django.conf import settings


def client_ip(request) -> str:
    remote = request.META.get("REMOTE_ADDR") or "0.0.0.0"
    trusted = settings.TRUSTED_PROXIES
    if not trusted or remote not in trusted:
        return remote
    # Each proxy appends the address it saw, so read from the right: the first hop that is not
    # one of our proxies is the client our outermost proxy saw. Anything left of it was written
    # by the client itself and may be forged.
    hops = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    for hop in reversed(hops):
        try:
            ip = str(ipaddress.ip_address(hop.strip()))
        except ValueError:
            return remote  # a garbled chain: only the proxy's own address is known
        if ip not in trusted:
            return ip
    return remote

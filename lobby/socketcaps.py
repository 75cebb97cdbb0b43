"""How many event sockets one player, and one address, may hold open in a web process.

Issue 12 saw one token open 1,000 sockets, all accepted, each holding memory and a share of the
process's Redis work. A player needs one socket (a second tab, a reconnect racing its old
socket: a few): beyond SOCKETS_PER_PLAYER the player's oldest socket is closed with
`CLOSE_REPLACED`, so a client that reconnects without closing never locks itself out. An
address (players behind one NAT share it) may hold SOCKETS_PER_IP; beyond that a new socket is
closed at once with `CLOSE_TOO_MANY`. Both close codes are in docs/api.md. The counts are per web
process: they bound what each process holds (its memory, its Redis work), which is what a flood
exhausts; with several processes behind a balancer a player may hold that many on each.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from django.conf import settings

from lobby.ip import client_ip

CLOSE_REPLACED = 4001  # the player opened more sockets than SOCKETS_PER_PLAYER: oldest first
CLOSE_TOO_MANY = 4029  # this address holds SOCKETS_PER_IP sockets already


class _ScopeRequest:
    """Just enough of a request for `client_ip`: the same trusted-proxy rule as the API's."""

    def __init__(self, scope):
        headers = dict(scope.get("headers", ()))
        client = scope.get("client") or ("0.0.0.0", 0)
        self.META = {
            "REMOTE_ADDR": client[0],
            "HTTP_X_FORWARDED_FOR": headers.get(b"x-forwarded-for", b"").decode("latin1"),
        }


def scope_ip(scope) -> str:
    return client_ip(_ScopeRequest(scope))


class SocketCaps:
    """The process's open sockets by player (oldest first) and by address."""

    def __init__(self):
        self._by_player: dict[int, list] = defaultdict(list)
        self._by_ip: Counter[str] = Counter()
        self._held: dict[int, tuple[int, str]] = {}  # id(socket) -> (player, ip)

    def admit(self, socket, *, player_id: int, ip: str) -> tuple[bool, list]:
        """Count the socket in; returns (admitted, older sockets of the player to close)."""
        if self._by_ip[ip] >= settings.SOCKETS_PER_IP:
            return False, []
        self._by_ip[ip] += 1
        self._held[id(socket)] = (player_id, ip)
        sockets = self._by_player[player_id]
        sockets.append(socket)
        excess = len(sockets) - settings.SOCKETS_PER_PLAYER
        return True, sockets[:excess] if excess > 0 else []

    def release(self, socket) -> None:
        held = self._held.pop(id(socket), None)
        if held is None:
            return
        player_id, ip = held
        self._by_ip[ip] -= 1
        if not self._by_ip[ip]:
            del self._by_ip[ip]
        sockets = self._by_player[player_id]
        if socket in sockets:
            sockets.remove(socket)
        if not sockets:
            del self._by_player[player_id]

    def count(self, *, player_id: int | None = None, ip: str | None = None) -> int:
        if player_id is not None:
            return len(self._by_player.get(player_id, ()))
        return self._by_ip.get(ip, 0)


# One per process: sockets of one process share its event loop, so no lock is needed.
socket_caps = SocketCaps()

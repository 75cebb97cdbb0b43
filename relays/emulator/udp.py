"""The emulator's UDP relay: one server port and one client port per ready session.

It follows edgegap-relay.md §2 as a game sees it. Each datagram's tokens are checked against the
live session, so revoking a user takes effect on its very next datagram: the host is the session's
first user and must use the server port, every other user the client port. A peer answers
Checking until `validation_delay` has passed since its first PING, then Valid; wrong or revoked
tokens get Invalid. DATA from a peer that is not Valid, payloads over 1187 bytes (either role) and
malformed datagrams are dropped without a word, as a real relay would.

Knobs are read on every datagram, so changing one affects live sessions too:

- `strict`: a token pair is Valid only from the source IP its user was authorized for; from any
  other address it gets Invalid (a token handed to the wrong player, or a player whose public IP
  was mis-read).
- `host_timeout`: once the host has been heard and then stays silent that many seconds, the
  session times out for good: every PING with valid tokens (the host's too, should it come back)
  gets SessionTimeout, DATA goes nowhere, and the REST session reads status "SessionTimeout". A host
  that never pinged does not time out. Clients never time out here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from relays.emulator.state import Knobs, Session
from relays.protocol import (
    MessageType,
    PeerDatagram,
    PingState,
    ProtocolError,
    decode_peer_datagram,
    encode_data_for_client,
    encode_data_for_host,
    encode_ping_reply,
)

logger = logging.getLogger(__name__)

Address = tuple[str, int]


@dataclass
class _Peer:
    address: Address
    user_token: int
    first_ping: float
    connection_id: int = 0  # how the host knows this client; the host itself has none


class _Port(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Address], None]) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.on_datagram(data, addr)


class SessionRelay:
    """Forwards datagrams between the host and the clients of one session.

    `knobs` returns the emulator's knobs of the moment: they are read on every datagram.
    """

    def __init__(
        self,
        session: Session,
        knobs: Callable[[], Knobs],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._knobs = knobs
        self._clock = clock
        self._host_heard: float | None = None  # when the host's last accepted datagram came
        self._server: asyncio.DatagramTransport | None = None
        self._client: asyncio.DatagramTransport | None = None
        self._host: _Peer | None = None
        self._clients: dict[Address, _Peer] = {}
        self._by_connection: dict[int, _Peer] = {}
        self._connection_ids = itertools.count(1)

    async def open(self, host: str) -> tuple[int, int]:
        """Bind the server and client ports on `host` (ephemeral ports); return their numbers."""
        loop = asyncio.get_running_loop()
        self._server, _ = await loop.create_datagram_endpoint(
            lambda: _Port(self._from_host), local_addr=(host, 0)
        )
        self._client, _ = await loop.create_datagram_endpoint(
            lambda: _Port(self._from_client), local_addr=(host, 0)
        )
        server_port = self._server.get_extra_info("sockname")[1]
        client_port = self._client.get_extra_info("sockname")[1]
        return server_port, client_port

    def close(self) -> None:
        for transport in (self._server, self._client):
            if transport is not None:
                transport.close()

    def check_host_timeout(self) -> bool:
        """Whether the session has timed out, marking it so if its host has been silent too long.

        Checked lazily (on each datagram, and by the REST API before it answers): the outcome is
        the same as a timer's, without one per session.
        """
        if not self._session.timed_out:
            timeout = self._knobs().host_timeout
            heard = self._host_heard
            if timeout is not None and heard is not None and self._clock() - heard >= timeout:
                self._session.time_out()
        return self._session.timed_out

    # --- Server port: the host ---------------------------------------------------------------

    def _from_host(self, data: bytes, addr: Address) -> None:
        message = _decode(data, from_host=True)
        if message is None:
            return
        allowed = self._allowed(message, addr, self._session.is_host)
        # Checked before this datagram counts as a sign of life: a host back too late is too late.
        timed_out = self.check_host_timeout()
        if message.type is MessageType.PING:
            if not allowed:
                if self._host is not None and self._host.address == addr:
                    self._host = None  # revoked: client DATA no longer reaches it
                self._server.sendto(encode_ping_reply(PingState.INVALID), addr)
                return
            if timed_out:
                self._server.sendto(encode_ping_reply(PingState.SESSION_TIMEOUT), addr)
                return
            if self._host is None:
                self._host = _Peer(addr, message.user_token, self._clock())
            # The host's last known address: where client DATA goes, even after a NAT rebinding.
            self._host.address = addr
            self._host_heard = self._clock()
            self._server.sendto(encode_ping_reply(self._state(self._host)), addr)
            return
        if not allowed or timed_out or self._live_host() is None:
            return
        self._host_heard = self._clock()
        client = self._by_connection.get(message.connection_id)
        if client is not None and self._session.is_client(client.user_token):
            self._client.sendto(encode_data_for_client(message.payload), client.address)

    # --- Client port: everyone else ----------------------------------------------------------

    def _from_client(self, data: bytes, addr: Address) -> None:
        message = _decode(data, from_host=False)
        if message is None:
            return
        allowed = self._allowed(message, addr, self._session.is_client)
        timed_out = self.check_host_timeout()
        peer = self._clients.get(addr)
        if peer is not None and peer.user_token != message.user_token:
            self._forget(peer)  # another user on this address: it starts over, with a new id
            peer = None
        if message.type is MessageType.PING:
            if not allowed:
                if peer is not None:
                    self._forget(peer)
                self._client.sendto(encode_ping_reply(PingState.INVALID), addr)
                return
            if timed_out:
                self._client.sendto(encode_ping_reply(PingState.SESSION_TIMEOUT), addr)
                return
            if peer is None:
                peer = _Peer(addr, message.user_token, self._clock(), next(self._connection_ids))
                self._clients[addr] = peer
                self._by_connection[peer.connection_id] = peer
            self._client.sendto(encode_ping_reply(self._state(peer)), addr)
            return
        host = self._live_host()
        if allowed and not timed_out and self._is_valid(peer) and host is not None:
            self._server.sendto(
                encode_data_for_host(peer.connection_id, message.payload), host.address
            )

    # --- Shared ------------------------------------------------------------------------------

    def _allowed(
        self, message: PeerDatagram, addr: Address, has_role: Callable[[int], bool]
    ) -> bool:
        """Whether the tokens are right for this port's role (and, when strict, for this IP)."""
        if message.session_token != self._session.authorization_token:
            return False
        if not has_role(message.user_token):
            return False
        if not self._knobs().strict:
            return True
        user = self._session.user(message.user_token)
        return ipaddress.ip_address(addr[0]) == ipaddress.ip_address(user.ip_address)

    def _state(self, peer: _Peer) -> PingState:
        elapsed = self._clock() - peer.first_ping
        validation_delay = self._knobs().validation_delay
        return PingState.VALID if elapsed >= validation_delay else PingState.CHECKING

    def _is_valid(self, peer: _Peer | None) -> bool:
        return peer is not None and self._state(peer) is PingState.VALID

    def _live_host(self) -> _Peer | None:
        """The host, if it is Valid and still authorized."""
        host = self._host
        if host is not None and self._is_valid(host) and self._session.is_host(host.user_token):
            return host
        return None

    def _forget(self, peer: _Peer) -> None:
        del self._clients[peer.address]
        del self._by_connection[peer.connection_id]


def _decode(data: bytes, *, from_host: bool) -> PeerDatagram | None:
    try:
        return decode_peer_datagram(data, from_host=from_host)
    except ProtocolError as exc:
        logger.debug("dropped a datagram: %s", exc)
        return None

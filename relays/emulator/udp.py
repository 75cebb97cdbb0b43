"""The emulator's UDP relay: one server port and one client port per ready session.

It follows edgegap-relay.md §2 as a game sees it. Each datagram's tokens are checked against the
live session, so revoking a user takes effect on its very next datagram: the host is the session's
first user and must use the server port, every other user the client port. A peer answers
Checking until `validation_delay` has passed since its first PING, then Valid; wrong or revoked
tokens get Invalid. DATA from a peer that is not Valid, oversized or malformed datagrams are
dropped without a word, as a real relay would. Peers never time out here.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from relays.emulator.state import Session
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

    `validation_delay` is read on every PING, so changing the knob affects live sessions too.
    """

    def __init__(
        self,
        session: Session,
        validation_delay: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._validation_delay = validation_delay
        self._clock = clock
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

    # --- Server port: the host ---------------------------------------------------------------

    def _from_host(self, data: bytes, addr: Address) -> None:
        message = _decode(data, from_host=True)
        if message is None:
            return
        allowed = self._tokens_match(message) and self._session.is_host(message.user_token)
        if message.type is MessageType.PING:
            if not allowed:
                if self._host is not None and self._host.address == addr:
                    self._host = None  # revoked: client DATA no longer reaches it
                self._server.sendto(encode_ping_reply(PingState.INVALID), addr)
                return
            if self._host is None:
                self._host = _Peer(addr, message.user_token, self._clock())
            # The host's last known address: where client DATA goes, even after a NAT rebinding.
            self._host.address = addr
            self._server.sendto(encode_ping_reply(self._state(self._host)), addr)
            return
        if not allowed or self._live_host() is None:
            return
        client = self._by_connection.get(message.connection_id)
        if client is not None and self._session.is_client(client.user_token):
            self._client.sendto(encode_data_for_client(message.payload), client.address)

    # --- Client port: everyone else ----------------------------------------------------------

    def _from_client(self, data: bytes, addr: Address) -> None:
        message = _decode(data, from_host=False)
        if message is None:
            return
        allowed = self._tokens_match(message) and self._session.is_client(message.user_token)
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
            if peer is None:
                peer = _Peer(addr, message.user_token, self._clock(), next(self._connection_ids))
                self._clients[addr] = peer
                self._by_connection[peer.connection_id] = peer
            self._client.sendto(encode_ping_reply(self._state(peer)), addr)
            return
        host = self._live_host()
        if allowed and self._is_valid(peer) and host is not None:
            self._server.sendto(
                encode_data_for_host(peer.connection_id, message.payload), host.address
            )

    # --- Shared ------------------------------------------------------------------------------

    def _tokens_match(self, message: PeerDatagram) -> bool:
        return message.session_token == self._session.authorization_token

    def _state(self, peer: _Peer) -> PingState:
        elapsed = self._clock() - peer.first_ping
        return PingState.VALID if elapsed >= self._validation_delay() else PingState.CHECKING

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

"""The Edgegap relay's UDP wire protocol, byte for byte (shared docs: edgegap-relay.md §2).

Players of a P2P match never talk to each other directly. Each one opens a UDP socket to the
relay: the match host sends to the relay's **server port**, every other player (a client) to its
**client port**, and the relay forwards datagrams between them. This module turns those datagrams
into Python values and back. It is pure (no sockets, no Django), so a game team can port or copy it
as it is; the project's relay emulator and reference client (`relays.play`) use this very code.

What a peer sends to the relay always starts with a 9-byte prefix, integers little-endian:

    offset 0  u32  the sender's own user authorization token
    offset 4  u32  the session authorization token (the same for every player of the match)
    offset 8  u8   message type: 1 PING, 2 DATA

- PING is exactly the prefix. It logs the peer in and keeps it alive: send one right after
  opening the socket, then every ~500 ms for as long as the match runs.
- DATA from a client is the prefix then the game payload; the relay forwards it to the host.
- DATA from the host is the prefix, the u32 connection id of the client it is meant for, then
  the payload; the relay forwards it to that client.

What the relay sends back carries no tokens:

    01 <state>               reply to a PING (see `PingState`); any later bytes are ignored
    02 <payload>             DATA for a client (from the host)
    02 <u32 conn> <payload>  DATA for the host (from the client the relay numbered `conn`)

The host never learns client addresses, only connection ids, which are never 0.

A datagram is at most `MAX_DATAGRAM` (1200) bytes and the relay's header costs up to 13 (the
9-byte prefix and the host's 4-byte connection id), so the game payload is at most `MAX_PAYLOAD`
= 1187 bytes **for both roles**, as Edgegap's manual says. A client's DATA could hold 1191 bytes
by arithmetic alone, but the relay is entitled to drop it (the emulator does): 1187 it is. The
relay adds no reliability, ordering nor encryption: that is the game's job.

Tokens are **unsigned** 32-bit: values above 2^31 are normal, so never store them in a signed
32-bit integer (a common bug in generated clients). The worked example of edgegap-relay.md, user
token 21986334 and session token 3500589645:

>>> encode_ping(21986334, 3500589645).hex(" ")
'1e 7c 4f 01 4d c2 a6 d0 01'
>>> encode_client_data(21986334, 3500589645, b"hi").hex(" ")
'1e 7c 4f 01 4d c2 a6 d0 02 68 69'
>>> encode_host_data(21986334, 3500589645, 7, b"hi").hex(" ")
'1e 7c 4f 01 4d c2 a6 d0 02 07 00 00 00 68 69'
>>> decode_relay_packet(bytes.fromhex("01 02"), for_host=False)
PingReply(state=<PingState.VALID: 2>)
>>> decode_relay_packet(bytes.fromhex("02 07 00 00 00 68 69"), for_host=True)
RelayData(payload=b'hi', connection_id=7)
>>> decode_relay_packet(bytes.fromhex("02 68 69"), for_host=False)
RelayData(payload=b'hi', connection_id=None)
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import TypeVar

MAX_DATAGRAM = 1200
PREFIX_SIZE = 9
CONNECTION_ID_SIZE = 4
RELAY_HEADER_SIZE = PREFIX_SIZE + CONNECTION_ID_SIZE  # the most any datagram spends on headers
MAX_PAYLOAD = MAX_DATAGRAM - RELAY_HEADER_SIZE  # 1187, whichever the role
U32_MAX = 2**32 - 1

_PREFIX = struct.Struct("<IIB")  # user token, session token, message type
_U32 = struct.Struct("<I")
_E = TypeVar("_E", bound=enum.IntEnum)


class ProtocolError(ValueError):
    """A datagram or a value that does not fit the wire protocol (size, range, layout)."""


class MessageType(enum.IntEnum):
    """The first byte of what the relay sends, and the ninth byte of what a peer sends."""

    PING = 1
    DATA = 2


class PingState(enum.IntEnum):
    """The state byte of a PING reply: where this peer stands with the relay."""

    DISCONNECTED = 0
    CHECKING = 1  # tokens received, validation under way: keep pinging, send no DATA yet
    VALID = 2  # DATA may flow
    INVALID = 3  # wrong token pair, wrong port for the role, or the user was revoked
    SESSION_TIMEOUT = 4  # the host went silent
    ERROR = 5


@dataclass(frozen=True)
class PeerDatagram:
    """A datagram a peer sent to the relay, decoded.

    `connection_id` is set on DATA from the host only (the client it is meant for); `payload` is
    empty for PING.
    """

    user_token: int
    session_token: int
    type: MessageType
    payload: bytes = b""
    connection_id: int | None = None


@dataclass(frozen=True)
class PingReply:
    """The relay's answer to a PING."""

    state: PingState


@dataclass(frozen=True)
class RelayData:
    """Game data the relay delivered: `connection_id` names the sending client (host side only)."""

    payload: bytes
    connection_id: int | None = None


# --- Peer -> relay ---------------------------------------------------------------------------


def encode_ping(user_token: int, session_token: int) -> bytes:
    """The PING datagram: login and keepalive. Send it every ~500 ms, whatever the state."""
    return _prefix(user_token, session_token, MessageType.PING)


def encode_client_data(user_token: int, session_token: int, payload: bytes) -> bytes:
    """A client's DATA datagram, for the host. `payload` is at most `MAX_PAYLOAD` bytes."""
    _check_payload(payload, MAX_PAYLOAD)
    return _prefix(user_token, session_token, MessageType.DATA) + payload


def encode_host_data(
    user_token: int, session_token: int, connection_id: int, payload: bytes
) -> bytes:
    """The host's DATA datagram for the client numbered `connection_id`.

    `connection_id` is one the host received with that client's data (never 0); `payload` is at
    most `MAX_PAYLOAD` bytes.
    """
    _check_u32("connection_id", connection_id, minimum=1)
    _check_payload(payload, MAX_PAYLOAD)
    prefix = _prefix(user_token, session_token, MessageType.DATA)
    return prefix + _U32.pack(connection_id) + payload


def decode_peer_datagram(datagram: bytes, *, from_host: bool) -> PeerDatagram:
    """Decode what a peer sent: the relay's side. Raises `ProtocolError` when malformed.

    `from_host` says which port it arrived on (server port: the host), since only the host's DATA
    carries a connection id. The tokens are decoded, not checked: that is the relay's business.
    """
    _check_size(datagram)
    if len(datagram) < PREFIX_SIZE:
        raise ProtocolError(f"datagram of {len(datagram)} bytes is shorter than the 9-byte prefix")
    user_token, session_token, raw_type = _PREFIX.unpack_from(datagram)
    message_type = _enum(MessageType, raw_type, "message type")
    if message_type is MessageType.PING:
        if len(datagram) != PREFIX_SIZE:
            raise ProtocolError(f"a PING is exactly 9 bytes, got {len(datagram)}")
        return PeerDatagram(user_token, session_token, message_type)
    if from_host:
        connection_id, payload = _split_connection_id(datagram, PREFIX_SIZE)
    else:
        connection_id, payload = None, bytes(datagram[PREFIX_SIZE:])
    _check_payload(payload, MAX_PAYLOAD)  # 1187 for a client too, though 1191 would fit
    return PeerDatagram(user_token, session_token, message_type, payload, connection_id)


# --- Relay -> peer ---------------------------------------------------------------------------


def encode_ping_reply(state: PingState) -> bytes:
    """The relay's answer to a PING: `01 <state>`."""
    return bytes((MessageType.PING, _enum(PingState, state, "ping state")))


def encode_data_for_client(payload: bytes) -> bytes:
    """What the relay sends a client on behalf of the host: `02 <payload>`."""
    _check_payload(payload, MAX_PAYLOAD)
    return bytes((MessageType.DATA,)) + payload


def encode_data_for_host(connection_id: int, payload: bytes) -> bytes:
    """What the relay sends the host on behalf of a client: `02 <u32 connection id> <payload>`."""
    _check_u32("connection_id", connection_id, minimum=1)
    _check_payload(payload, MAX_PAYLOAD)
    return bytes((MessageType.DATA,)) + _U32.pack(connection_id) + payload


def decode_relay_packet(packet: bytes, *, for_host: bool) -> PingReply | RelayData:
    """Decode what the relay sent: the peer's side. Raises `ProtocolError` when malformed.

    `for_host` is true on the host's socket: DATA for the host starts with a connection id, DATA
    for a client does not, and the bytes alone cannot tell them apart.
    """
    _check_size(packet)
    if not packet:
        raise ProtocolError("empty packet")
    message_type = _enum(MessageType, packet[0], "message type")
    if message_type is MessageType.PING:
        # Read the state byte and ignore whatever follows, as Mirror's transport does: a relay
        # may append to its reply, and dropping the reply would leave the peer Checking forever.
        if len(packet) < 2:
            raise ProtocolError("a PING reply needs its state byte")
        return PingReply(_enum(PingState, packet[1], "ping state"))
    if not for_host:
        return RelayData(bytes(packet[1:]))
    connection_id, payload = _split_connection_id(packet, 1)
    return RelayData(payload, connection_id)


# --- Checks ----------------------------------------------------------------------------------


def _prefix(user_token: int, session_token: int, message_type: MessageType) -> bytes:
    _check_u32("user_token", user_token)
    _check_u32("session_token", session_token)
    return _PREFIX.pack(user_token, session_token, message_type)


def _split_connection_id(data: bytes, offset: int) -> tuple[int, bytes]:
    if len(data) < offset + CONNECTION_ID_SIZE:
        raise ProtocolError("DATA is too short to hold its 4-byte connection id")
    (connection_id,) = _U32.unpack_from(data, offset)
    if connection_id == 0:
        raise ProtocolError("connection id 0 is never assigned")
    return connection_id, bytes(data[offset + CONNECTION_ID_SIZE :])


def _check_u32(name: str, value: int, *, minimum: int = 0) -> None:
    # bool is an int subclass: True would silently encode as token 1.
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= U32_MAX:
        raise ProtocolError(f"{name} must be an integer from {minimum} to {U32_MAX}, got {value!r}")


def _check_payload(payload: bytes, limit: int) -> None:
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise ProtocolError(f"payload must be bytes, got {type(payload).__name__}")
    if len(payload) > limit:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds the {limit}-byte limit")


def _check_size(data: bytes) -> None:
    if len(data) > MAX_DATAGRAM:
        raise ProtocolError(f"{len(data)} bytes exceeds the {MAX_DATAGRAM}-byte datagram limit")


def _enum(kind: type[_E], value: int, name: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        raise ProtocolError(f"unknown {name} {value!r}") from None

"""The wire-protocol codec against edgegap-relay.md §2, byte for byte."""

import doctest

import pytest

from relays import protocol
from relays.protocol import (
    MAX_DATAGRAM,
    MAX_PAYLOAD,
    MessageType,
    PeerDatagram,
    PingReply,
    PingState,
    ProtocolError,
    RelayData,
    decode_peer_datagram,
    decode_relay_packet,
    encode_client_data,
    encode_data_for_client,
    encode_data_for_host,
    encode_host_data,
    encode_ping,
    encode_ping_reply,
)

# The worked example of edgegap-relay.md: user token 21986334, session token 3500589645.
USER, SESSION = 21986334, 3500589645
PREFIX = bytes.fromhex("1e 7c 4f 01 4d c2 a6 d0")


def test_worked_example_matches_the_edgegap_document_byte_for_byte():
    payload = b"\x00game\xff"
    assert encode_ping(USER, SESSION) == PREFIX + b"\x01"
    assert encode_client_data(USER, SESSION, payload) == PREFIX + b"\x02" + payload
    assert (
        encode_host_data(USER, SESSION, 7, payload)
        == PREFIX + b"\x02" + bytes.fromhex("07 00 00 00") + payload
    )
    assert encode_ping_reply(PingState.VALID) == bytes.fromhex("01 02")
    assert encode_data_for_host(7, payload) == bytes.fromhex("02 07 00 00 00") + payload
    assert encode_data_for_client(payload) == b"\x02" + payload


def test_worked_example_decodes_back_to_the_same_values():
    assert decode_peer_datagram(PREFIX + b"\x01", from_host=False) == PeerDatagram(
        USER, SESSION, MessageType.PING
    )
    assert decode_peer_datagram(PREFIX + b"\x02hi", from_host=False) == PeerDatagram(
        USER, SESSION, MessageType.DATA, b"hi"
    )
    host_data = PREFIX + b"\x02" + bytes.fromhex("07 00 00 00") + b"hi"
    assert decode_peer_datagram(host_data, from_host=True) == PeerDatagram(
        USER, SESSION, MessageType.DATA, b"hi", connection_id=7
    )
    assert decode_relay_packet(bytes.fromhex("01 02"), for_host=True) == PingReply(PingState.VALID)
    assert decode_relay_packet(bytes.fromhex("02 07 00 00 00") + b"hi", for_host=True) == RelayData(
        b"hi", 7
    )
    assert decode_relay_packet(b"\x02hi", for_host=False) == RelayData(b"hi")


def test_module_doctests_pass():
    results = doctest.testmod(protocol)
    assert results.attempted >= 6
    assert results.failed == 0


@pytest.mark.parametrize("token", [2**31, SESSION, 2**32 - 1, 0])
def test_tokens_use_the_whole_unsigned_32_bit_range(token):
    datagram = encode_ping(token, token)
    decoded = decode_peer_datagram(datagram, from_host=True)
    assert (decoded.user_token, decoded.session_token) == (token, token)


@pytest.mark.parametrize("token", [-1, 2**32, -SESSION, True, 1.0, "21986334", None])
def test_tokens_outside_the_unsigned_32_bit_range_are_refused(token):
    with pytest.raises(ProtocolError, match="user_token"):
        encode_ping(token, SESSION)
    with pytest.raises(ProtocolError, match="session_token"):
        encode_client_data(USER, token, b"x")


def test_the_payload_limit_is_1187_bytes_for_both_roles():
    # Edgegap's manual: 1200-byte datagrams, up to 13 bytes of relay header, so 1187 for host and
    # client alike (a client's DATA would fit 1191 bytes, but the relay may drop it).
    assert MAX_PAYLOAD == 1187
    assert len(encode_host_data(USER, SESSION, 1, bytes(MAX_PAYLOAD))) == MAX_DATAGRAM
    assert len(encode_client_data(USER, SESSION, bytes(MAX_PAYLOAD))) == MAX_DATAGRAM - 4
    with pytest.raises(ProtocolError, match="1187"):
        encode_client_data(USER, SESSION, bytes(MAX_PAYLOAD + 1))
    with pytest.raises(ProtocolError, match="1187"):
        encode_host_data(USER, SESSION, 1, bytes(MAX_PAYLOAD + 1))


# From the host, 1188 bytes make a 1201-byte datagram; from a client, a 1197-byte one that fits
# 1200 bytes but not Edgegap's payload limit.
@pytest.mark.parametrize(("from_host", "error"), [(True, "1200-byte"), (False, "1187-byte")])
def test_the_relay_side_refuses_a_payload_over_1187_bytes_from_either_role(from_host, error):
    prefix = PREFIX + b"\x02" + (bytes.fromhex("07 00 00 00") if from_host else b"")
    assert len(decode_peer_datagram(prefix + bytes(1187), from_host=from_host).payload) == 1187
    with pytest.raises(ProtocolError, match=f"exceeds the {error}"):
        decode_peer_datagram(prefix + bytes(1188), from_host=from_host)


def test_relay_packets_for_the_largest_payloads_still_fit_a_datagram():
    assert len(encode_data_for_host(1, bytes(MAX_PAYLOAD))) <= MAX_DATAGRAM
    assert len(encode_data_for_client(bytes(MAX_PAYLOAD))) <= MAX_DATAGRAM
    with pytest.raises(ProtocolError, match="1187"):
        encode_data_for_host(1, bytes(MAX_PAYLOAD + 1))


def test_payload_must_be_bytes():
    with pytest.raises(ProtocolError, match="bytes"):
        encode_client_data(USER, SESSION, "text")
    assert encode_client_data(USER, SESSION, bytearray(b"ok")).endswith(b"ok")


def test_connection_id_zero_is_never_valid():
    with pytest.raises(ProtocolError, match="connection_id"):
        encode_host_data(USER, SESSION, 0, b"x")
    with pytest.raises(ProtocolError, match="connection_id"):
        encode_data_for_host(0, b"x")
    with pytest.raises(ProtocolError, match="connection id 0"):
        decode_peer_datagram(PREFIX + b"\x02" + bytes(4), from_host=True)
    with pytest.raises(ProtocolError, match="connection id 0"):
        decode_relay_packet(b"\x02" + bytes(4) + b"x", for_host=True)


@pytest.mark.parametrize(
    ("datagram", "from_host", "error"),
    [
        (b"", False, "shorter than the 9-byte prefix"),
        (PREFIX, False, "shorter than the 9-byte prefix"),
        (PREFIX + b"\x03", False, "unknown message type 3"),
        (PREFIX + b"\x00", True, "unknown message type 0"),
        (PREFIX + b"\x01\x00", False, "a PING is exactly 9 bytes"),
        (PREFIX + b"\x02\x07\x00\x00", True, "too short to hold its 4-byte connection id"),
        (PREFIX + b"\x02" + bytes(MAX_DATAGRAM), False, "exceeds the 1200-byte datagram limit"),
    ],
)
def test_malformed_peer_datagrams_raise_protocol_error(datagram, from_host, error):
    with pytest.raises(ProtocolError, match=error):
        decode_peer_datagram(datagram, from_host=from_host)


def test_a_1200_byte_datagram_decodes_and_1201_does_not():
    datagram = PREFIX + b"\x02" + bytes.fromhex("07 00 00 00") + bytes(MAX_PAYLOAD)
    assert len(datagram) == MAX_DATAGRAM
    assert len(decode_peer_datagram(datagram, from_host=True).payload) == MAX_PAYLOAD
    with pytest.raises(ProtocolError, match="1200"):
        decode_peer_datagram(datagram + b"\x00", from_host=True)


@pytest.mark.parametrize(
    ("packet", "for_host", "error"),
    [
        (b"", False, "empty packet"),
        (b"\x01", False, "state byte"),
        (b"\x01\x09", False, "unknown ping state 9"),
        (b"\x07hello", False, "unknown message type 7"),
        (b"\x02\x01\x00", True, "too short to hold its 4-byte connection id"),
        (b"\x02" + bytes(MAX_DATAGRAM), False, "exceeds the 1200-byte datagram limit"),
    ],
)
def test_malformed_relay_packets_raise_protocol_error(packet, for_host, error):
    with pytest.raises(ProtocolError, match=error):
        decode_relay_packet(packet, for_host=for_host)


@pytest.mark.parametrize("tail", [b"\x00", b"\x00\x00\x00", b"extra bytes a relay may append"])
def test_a_ping_reply_longer_than_2_bytes_is_read_by_its_state_byte(tail):
    # Mirror's transport reads the state byte and ignores the rest; so do we.
    for for_host in (True, False):
        packet = b"\x01\x02" + tail
        assert decode_relay_packet(packet, for_host=for_host) == PingReply(PingState.VALID)


def test_every_ping_state_has_its_documented_byte():
    assert [(state.name, int(state)) for state in PingState] == [
        ("DISCONNECTED", 0),
        ("CHECKING", 1),
        ("VALID", 2),
        ("INVALID", 3),
        ("SESSION_TIMEOUT", 4),
        ("ERROR", 5),
    ]
    for state in PingState:
        assert decode_relay_packet(encode_ping_reply(state), for_host=False) == PingReply(state)
    with pytest.raises(ProtocolError, match="ping state"):
        encode_ping_reply(6)


def test_protocol_error_is_a_value_error():
    assert issubclass(ProtocolError, ValueError)

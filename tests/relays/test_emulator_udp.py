"""The emulator's UDP relay with real sockets, speaking the wire protocol (edgegap-relay.md §2):
a host on the server port, clients on the client port.
"""

import socket
import time

import pytest
import requests

from relays.emulator import EmulatorThread
from relays.protocol import (
    MAX_PAYLOAD,
    PingReply,
    PingState,
    RelayData,
    decode_relay_packet,
    encode_client_data,
    encode_host_data,
    encode_ping,
)

TOKEN = "test-token"
SESSIONS = "/v1/relays/sessions"


@pytest.fixture(scope="module")
def emulator_thread():
    with EmulatorThread(token=TOKEN, seed=99, ready_delay=0.0, validation_delay=0.05) as thread:
        yield thread


@pytest.fixture
def emulator(emulator_thread):
    yield emulator_thread
    emulator_thread.reset()


def api(emulator, method, path, **kwargs):
    headers = {"Authorization": f"token {TOKEN}"}
    return requests.request(method, emulator.base_url + path, headers=headers, timeout=5, **kwargs)


def ready_session(emulator, players=2, ips=None):
    ips = ips or [f"203.0.113.{n}" for n in range(1, players + 1)]
    session = api(emulator, "POST", SESSIONS, json={"users": [{"ip": ip} for ip in ips]}).json()
    deadline = time.monotonic() + 3
    while not session["ready"]:
        assert time.monotonic() < deadline, "the session never got ready"
        time.sleep(0.01)
        session = api(emulator, "GET", f"{SESSIONS}/{session['session_id']}").json()
    return session


class Peer:
    """A bare UDP socket speaking to one relay port, for the tests' eyes only."""

    def __init__(self, session, index, *, port_role=None, source="127.0.0.1"):
        self.user_token = session["session_users"][index]["authorization_token"]
        self.session_token = session["authorization_token"]
        self.is_host = index == 0
        role = port_role or ("server" if self.is_host else "client")
        self.address = ("127.0.0.1", session["relay"]["ports"][role]["port"])
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))  # all of 127.0.0.0/8 is loopback on Linux

    def send_raw(self, datagram):
        self.sock.sendto(datagram, self.address)

    def ping(self):
        self.send_raw(encode_ping(self.user_token, self.session_token))
        return self.receive()

    def send(self, payload, connection_id=None):
        if connection_id is None:
            datagram = encode_client_data(self.user_token, self.session_token, payload)
        else:
            datagram = encode_host_data(self.user_token, self.session_token, connection_id, payload)
        self.send_raw(datagram)

    def receive(self, timeout=1.0):
        """The next packet from the relay, decoded; None when nothing came in time."""
        self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(65535)
        except TimeoutError:
            return None
        return decode_relay_packet(data, for_host=self.is_host)

    def ping_until_valid(self, timeout=2.0):
        deadline = time.monotonic() + timeout
        while (reply := self.ping()) != PingReply(PingState.VALID):
            assert time.monotonic() < deadline, f"still {reply} after {timeout} s"
            time.sleep(0.02)

    def close(self):
        self.sock.close()


@pytest.fixture
def peers():
    opened = []

    def open_peer(session, index, **kwargs):
        peer = Peer(session, index, **kwargs)
        opened.append(peer)
        return peer

    yield open_peer
    for peer in opened:
        peer.close()


def test_a_peer_is_checking_after_its_first_ping_then_valid(emulator, peers):
    emulator.config(validation_delay=0.3)
    session = ready_session(emulator)
    host, client = peers(session, 0), peers(session, 1)
    assert host.ping() == PingReply(PingState.CHECKING)
    assert client.ping() == PingReply(PingState.CHECKING)
    time.sleep(0.35)
    assert host.ping() == PingReply(PingState.VALID)
    assert client.ping() == PingReply(PingState.VALID)


def test_data_flows_both_ways_and_the_host_sees_a_nonzero_connection_id(emulator, peers):
    session = ready_session(emulator, players=3)
    host, alice, bob = peers(session, 0), peers(session, 1), peers(session, 2)
    for peer in (host, alice, bob):
        peer.ping_until_valid()

    alice.send(b"from alice")
    from_alice = host.receive()
    bob.send(b"from bob")
    from_bob = host.receive()
    assert (from_alice.payload, from_bob.payload) == (b"from alice", b"from bob")
    assert 0 not in (from_alice.connection_id, from_bob.connection_id)
    assert from_alice.connection_id != from_bob.connection_id

    host.send(b"to bob", connection_id=from_bob.connection_id)
    assert bob.receive() == RelayData(b"to bob")
    assert alice.receive(timeout=0.2) is None  # the host's reply went to bob only

    alice.send(b"again")
    assert host.receive().connection_id == from_alice.connection_id  # stable per client


def test_data_sent_before_valid_is_dropped(emulator, peers):
    emulator.config(validation_delay=5.0)
    session = ready_session(emulator)
    host, client = peers(session, 0), peers(session, 1)
    assert host.ping() == client.ping() == PingReply(PingState.CHECKING)
    client.send(b"too early")
    assert host.receive(timeout=0.2) is None


def test_data_from_a_peer_that_never_pinged_is_dropped(emulator, peers):
    session = ready_session(emulator)
    host, client = peers(session, 0), peers(session, 1)
    host.ping_until_valid()
    client.send(b"who am I")
    assert host.receive(timeout=0.2) is None


@pytest.mark.parametrize("wrong", ["session_token", "user_token"])
def test_a_wrong_token_gets_invalid(emulator, peers, wrong):
    session = ready_session(emulator)
    client = peers(session, 1)
    setattr(client, wrong, (getattr(client, wrong) + 1) % 2**32)
    assert client.ping() == PingReply(PingState.INVALID)


def test_a_token_of_another_session_gets_invalid(emulator, peers):
    first, second = ready_session(emulator), ready_session(emulator)
    intruder = peers(first, 1)
    intruder.address = ("127.0.0.1", second["relay"]["ports"]["client"]["port"])
    assert intruder.ping() == PingReply(PingState.INVALID)


def test_each_role_must_use_its_own_port(emulator, peers):
    session = ready_session(emulator)
    host_on_client_port = peers(session, 0, port_role="client")
    client_on_server_port = peers(session, 1, port_role="server")
    assert host_on_client_port.ping() == PingReply(PingState.INVALID)
    assert client_on_server_port.ping() == PingReply(PingState.INVALID)


def test_a_revoked_client_becomes_invalid_and_its_data_is_dropped(emulator, peers):
    session = ready_session(emulator)
    host, client = peers(session, 0), peers(session, 1)
    host.ping_until_valid()
    client.ping_until_valid()
    client.send(b"before")
    connection_id = host.receive().connection_id

    revoked = api(
        emulator,
        "POST",
        "/v1/relays/sessions:revoke-user",
        json={"session_id": session["session_id"], "authorization_token": client.user_token},
    )
    assert revoked.status_code == 204

    client.send(b"after")
    assert host.receive(timeout=0.2) is None
    host.send(b"to the revoked", connection_id=connection_id)
    assert client.receive(timeout=0.2) is None
    assert client.ping() == PingReply(PingState.INVALID)


def test_a_late_joiner_authorized_after_ready_can_connect(emulator, peers):
    session = ready_session(emulator, players=1)
    answer = api(
        emulator,
        "POST",
        "/v1/relays/sessions:authorize-user",
        json={"session_id": session["session_id"], "user_ip": "198.51.100.9"},
    ).json()
    session["session_users"].append(answer["session_user"])
    host, joiner = peers(session, 0), peers(session, 1)
    host.ping_until_valid()
    joiner.ping_until_valid()
    joiner.send(b"hi, I am late")
    assert host.receive().payload == b"hi, I am late"


def test_payloads_up_to_1187_bytes_are_relayed_both_ways_and_larger_ones_dropped(emulator, peers):
    session = ready_session(emulator)
    host, client = peers(session, 0), peers(session, 1)
    host.ping_until_valid()
    client.ping_until_valid()

    client.send(bytes(MAX_PAYLOAD))
    largest = host.receive()
    assert len(largest.payload) == MAX_PAYLOAD == 1187
    host.send(bytes(MAX_PAYLOAD), connection_id=largest.connection_id)  # a 1200-byte datagram
    assert len(client.receive().payload) == MAX_PAYLOAD

    # 1188 bytes from a client still fit a 1200-byte datagram, but not Edgegap's limit.
    client.send_raw(encode_client_data(client.user_token, client.session_token, b"") + bytes(1188))
    assert host.receive(timeout=0.2) is None
    prefix = encode_host_data(host.user_token, host.session_token, largest.connection_id, b"")
    host.send_raw(prefix + bytes(1188))  # 1201 bytes
    assert client.receive(timeout=0.2) is None


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x01", b"12345678", b"\x00" * 9 + b"junk", bytes(8) + b"\x07"],
)
def test_malformed_datagrams_are_dropped_without_a_reply(emulator, peers, garbage):
    session = ready_session(emulator)
    client = peers(session, 1)
    client.send_raw(garbage)
    assert client.receive(timeout=0.2) is None
    assert client.ping() == PingReply(PingState.CHECKING)  # the relay is still serving


def test_host_data_with_an_unknown_connection_id_goes_nowhere(emulator, peers):
    session = ready_session(emulator)
    host, client = peers(session, 0), peers(session, 1)
    host.ping_until_valid()
    client.ping_until_valid()
    host.send(b"lost", connection_id=4242)
    assert client.receive(timeout=0.2) is None


def test_deleting_the_session_closes_its_ports(emulator):
    session = ready_session(emulator)
    ports = [session["relay"]["ports"][role]["port"] for role in ("server", "client")]
    assert api(emulator, "DELETE", f"{SESSIONS}/{session['session_id']}").status_code == 204
    for port in ports:
        deadline = time.monotonic() + 1
        while True:
            # Binding succeeds only once the relay has let go of the port.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"port {port} is still bound"
                    time.sleep(0.02)


# --- strict: tokens are tied to the IP they were authorized for --------------------------------


def test_strict_makes_a_token_valid_only_from_the_ip_it_was_authorized_for(emulator, peers):
    # Made for loopback addresses while strict is off (strict refuses them at creation), then
    # checked with strict on: the relay compares each datagram's source IP with its user's IP.
    session = ready_session(emulator, ips=["127.0.0.1", "127.0.0.2"])
    emulator.config(strict=True)
    host = peers(session, 0, source="127.0.0.1")
    client_elsewhere = peers(session, 1, source="127.0.0.1")
    host_elsewhere = peers(session, 0, source="127.0.0.3")
    client = peers(session, 1, source="127.0.0.2")

    assert client_elsewhere.ping() == PingReply(PingState.INVALID)
    assert host_elsewhere.ping() == PingReply(PingState.INVALID)
    host.ping_until_valid()
    client.ping_until_valid()
    client.send(b"from the right address")
    assert host.receive().payload == b"from the right address"
    client_elsewhere.send(b"from the wrong one")
    assert host.receive(timeout=0.2) is None

    emulator.config(strict=False)  # the dev stack's rule: any source address will do
    client_elsewhere.ping_until_valid()


def test_strict_refuses_a_session_made_for_other_ips_from_loopback(emulator, peers):
    session = ready_session(emulator)  # users 203.0.113.1 and .2; we send from 127.0.0.1
    emulator.config(strict=True)
    assert peers(session, 0).ping() == PingReply(PingState.INVALID)
    assert peers(session, 1).ping() == PingReply(PingState.INVALID)


# --- host_timeout: SessionTimeout once the host goes silent -------------------------------------


def session_status(emulator, session):
    return api(emulator, "GET", f"{SESSIONS}/{session['session_id']}").json()


def test_a_silent_host_times_the_session_out_for_good(emulator, peers):
    emulator.config(host_timeout=0.3)
    session = ready_session(emulator)
    host, client = peers(session, 0), peers(session, 1)
    host.ping_until_valid()
    client.ping_until_valid()
    client.send(b"before")
    connection_id = host.receive().connection_id

    time.sleep(0.4)  # the host sends nothing
    assert client.ping() == PingReply(PingState.SESSION_TIMEOUT)
    answer = session_status(emulator, session)
    assert (answer["status"], answer["ready"]) == ("SessionTimeout", True)
    assert answer["relay"] is not None  # still there, still billed: deleting it is our job

    # Sticky: the host coming back does not revive the session, and DATA goes nowhere.
    assert host.ping() == PingReply(PingState.SESSION_TIMEOUT)
    client.send(b"after")
    assert host.receive(timeout=0.2) is None
    host.send(b"after", connection_id=connection_id)
    assert client.receive(timeout=0.2) is None
    assert client.ping() == PingReply(PingState.SESSION_TIMEOUT)
    # Wrong tokens are still told they are wrong.
    client.user_token ^= 1
    assert client.ping() == PingReply(PingState.INVALID)


def test_the_rest_status_reads_session_timeout_without_any_datagram(emulator, peers):
    emulator.config(host_timeout=0.2)
    session = ready_session(emulator)
    peers(session, 0).ping_until_valid()
    assert session_status(emulator, session)["status"] == "READY"
    time.sleep(0.3)
    assert session_status(emulator, session)["status"] == "SessionTimeout"
    listed = api(emulator, "GET", SESSIONS).json()["sessions"]
    assert [s["status"] for s in listed] == ["SessionTimeout"]


def test_a_host_that_keeps_pinging_or_never_pinged_does_not_time_out(emulator, peers):
    emulator.config(host_timeout=0.3)
    pinging, never_pinged = ready_session(emulator), ready_session(emulator)
    host, client = peers(pinging, 0), peers(pinging, 1)
    lonely_client = peers(never_pinged, 1)
    host.ping_until_valid()
    client.ping_until_valid()
    deadline = time.monotonic() + 0.9
    while time.monotonic() < deadline:
        assert host.ping() == PingReply(PingState.VALID)
        assert client.ping() == PingReply(PingState.VALID)
        time.sleep(0.1)
    lonely_client.ping_until_valid()
    assert session_status(emulator, pinging)["status"] == "READY"
    assert session_status(emulator, never_pinged)["status"] == "READY"


def test_without_host_timeout_a_silent_host_never_times_out(emulator, peers):
    session = ready_session(emulator)
    host, client = peers(session, 0), peers(session, 1)
    host.ping_until_valid()
    time.sleep(0.3)
    client.ping_until_valid()
    emulator.config(host_timeout=0.2)  # read live: the host has been silent long enough already
    assert client.ping() == PingReply(PingState.SESSION_TIMEOUT)

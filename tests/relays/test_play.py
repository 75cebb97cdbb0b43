"""The reference game client (`relays.play`) against the emulator's real UDP relay."""

import json
import socket
import threading
import time

import pytest
import requests

from relays import play
from relays.emulator import EmulatorThread
from relays.play import RelayError, RelayPeer, run_client, run_host
from relays.protocol import PingState, ProtocolError

TOKEN = "test-token"
SESSIONS = "/v1/relays/sessions"
FAST = 0.1  # ping interval: the low end of what the relay accepts, for quick handshakes


@pytest.fixture(scope="module")
def emulator_thread():
    with EmulatorThread(token=TOKEN, seed=7, ready_delay=0.0, validation_delay=0.05) as thread:
        yield thread


@pytest.fixture
def emulator(emulator_thread):
    yield emulator_thread
    emulator_thread.reset()


def ready_session(emulator, players=2):
    headers = {"Authorization": f"token {TOKEN}"}
    users = [{"ip": f"203.0.113.{n}"} for n in range(1, players + 1)]
    url = emulator.base_url + SESSIONS
    session = requests.post(url, json={"users": users}, headers=headers, timeout=5).json()
    deadline = time.monotonic() + 3
    while not session["ready"]:
        assert time.monotonic() < deadline, "the session never got ready"
        time.sleep(0.01)
        session = requests.get(f"{url}/{session['session_id']}", headers=headers, timeout=5).json()
    return session


def assignments(session):
    """Each player's assignment (design.md §4), as the lobby service builds it: host first."""
    relay = session["relay"]
    roles = ["server"] + ["client"] * (len(session["session_users"]) - 1)
    return [
        {
            "lobby_id": "lobby-1",
            "status": "ready",
            "role": role,
            "relay": {
                "host": relay["host"],
                "ip": relay["ip"],
                "port": relay["ports"][role]["port"],
                "protocol": "UDP",
            },
            "session_authorization_token": session["authorization_token"],
            "user_authorization_token": user["authorization_token"],
            "error": None,
        }
        for role, user in zip(roles, session["session_users"], strict=True)
    ]


def connect(assignment):
    return RelayPeer.from_assignment(assignment, ping_interval=FAST)


class HostThread:
    """The host's echo loop in the background, stopped at the end of the test."""

    def __init__(self, assignment):
        self.peer = connect(assignment)
        self.peer.connect_until_valid(timeout=3)
        self.log = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=run_host, args=(self.peer, self._stop.is_set, self.log.append), daemon=True
        )

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(timeout=3)
        self.peer.close()


def test_host_and_client_exchange_data_through_the_relay(emulator):
    host_assignment, client_assignment = assignments(ready_session(emulator))
    with (
        HostThread(host_assignment) as host,
        connect(client_assignment) as client,
    ):
        client.connect_until_valid(timeout=3)
        assert client.state is PingState.VALID
        replies = run_client(client, [b"hello 1", b"hello 2"], log=lambda line: None)
    assert replies == [b"echo: hello 1", b"echo: hello 2"]
    assert host.log[0].startswith("[conn ")
    assert host.log[0].endswith("] hello 1")


def test_the_host_answers_each_client_by_its_connection_id(emulator):
    host_assignment, *client_assignments = assignments(ready_session(emulator, players=3))
    with HostThread(host_assignment):
        alice, bob = map(connect, client_assignments)
        with alice, bob:
            alice.connect_until_valid(timeout=3)
            bob.connect_until_valid(timeout=3)
            alice.send(b"alice")
            bob.send(b"bob")
            assert alice.recv(timeout=2).payload == b"echo: alice"
            assert bob.recv(timeout=2).payload == b"echo: bob"
            assert alice.recv(timeout=0.2) is None


def test_invalid_tokens_raise_relay_error_with_a_hint(emulator):
    _, client_assignment = assignments(ready_session(emulator))
    client_assignment["user_authorization_token"] += 1
    with (
        connect(client_assignment) as client,
        pytest.raises(RelayError, match="own user token") as raised,
    ):
        client.connect_until_valid(timeout=3)
    assert raised.value.state is PingState.INVALID


def test_a_peer_removed_from_the_match_gets_relay_error_while_receiving(emulator):
    session = ready_session(emulator)
    host_assignment, client_assignment = assignments(session)
    with (
        HostThread(host_assignment),
        connect(client_assignment) as client,
    ):
        client.connect_until_valid(timeout=3)
        requests.post(
            emulator.base_url + "/v1/relays/sessions:revoke-user",
            json={
                "session_id": session["session_id"],
                "authorization_token": client_assignment["user_authorization_token"],
            },
            headers={"Authorization": f"token {TOKEN}"},
            timeout=5,
        )
        with pytest.raises(RelayError):
            client.recv(timeout=2)  # the next keepalive PING learns it is Invalid


@pytest.mark.parametrize("reply", ["01 02 00", "01 02 00 00 00 00", "01 02 ff ff ff ff ff ff"])
def test_a_ping_reply_longer_than_2_bytes_is_read_by_its_state_byte(reply):
    # A stand-in relay that pads its PING replies: Mirror reads the state byte and ignores the
    # rest, and so must the reference client, or it would stay Checking forever.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as relay:
        relay.bind(("127.0.0.1", 0))
        relay.settimeout(3)

        def answer():
            _, peer_address = relay.recvfrom(65535)
            relay.sendto(bytes.fromhex(reply), peer_address)

        responder = threading.Thread(target=answer)
        responder.start()
        with RelayPeer(
            "127.0.0.1", relay.getsockname()[1], session_token=1, user_token=2, role="client"
        ) as peer:
            peer.connect_until_valid(timeout=2)
            assert peer.state is PingState.VALID
        responder.join()


def test_a_client_learns_session_timeout_when_the_host_goes_silent(emulator):
    emulator.config(host_timeout=0.3)
    host_assignment, client_assignment = assignments(ready_session(emulator))
    with connect(host_assignment) as host, connect(client_assignment) as client:
        host.connect_until_valid(timeout=3)
        client.connect_until_valid(timeout=3)
        # The host stops calling recv(), so it stops pinging; the client keeps waiting.
        with pytest.raises(RelayError, match="SessionTimeout") as raised:
            client.recv(timeout=3)
    assert raised.value.state is PingState.SESSION_TIMEOUT


def test_connect_times_out_when_no_relay_answers():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # bound, so no ICMP error either: just silence
        peer = RelayPeer(
            "127.0.0.1", silent.getsockname()[1], session_token=1, user_token=2, role="client"
        )
        with peer, pytest.raises(TimeoutError, match="did not validate us"):
            peer.connect_until_valid(timeout=0.3)


@pytest.mark.parametrize(("role", "connection_id"), [("server", None), ("client", 3)])
def test_send_wants_a_connection_id_from_the_host_only(role, connection_id):
    with (
        RelayPeer("127.0.0.1", 9, session_token=1, user_token=2, role=role) as peer,
        pytest.raises(ValueError, match="connection_id"),
    ):
        peer.send(b"x", connection_id)


def test_a_peer_refuses_tokens_outside_the_unsigned_32_bit_range():
    with pytest.raises(ProtocolError):
        RelayPeer("127.0.0.1", 9, session_token=-1, user_token=2, role="client")
    with pytest.raises(ValueError, match="role"):
        RelayPeer("127.0.0.1", 9, session_token=1, user_token=2, role="host")


def test_cli_client_with_an_assignment_file(emulator, tmp_path, capsys):
    host_assignment, client_assignment = assignments(ready_session(emulator))
    path = tmp_path / "client.json"
    path.write_text(json.dumps(client_assignment))
    with HostThread(host_assignment):
        assert play.main(["--assignment", str(path), "--messages", "2"]) == 0
    out = capsys.readouterr().out
    assert "valid: relay 127.0.0.1:" in out
    assert "reply: echo: hello 2" in out


def test_cli_host_with_explicit_flags_serves_for_its_duration(emulator, capsys):
    host_assignment, client_assignment = assignments(ready_session(emulator))
    argv = [
        "--relay-ip", host_assignment["relay"]["ip"],
        "--port", str(host_assignment["relay"]["port"]),
        "--session-token", str(host_assignment["session_authorization_token"]),
        "--user-token", str(host_assignment["user_authorization_token"]),
        "--role", "server",
        "--duration", "1",
    ]  # fmt: skip
    host = threading.Thread(target=play.main, args=(argv,))
    host.start()
    with connect(client_assignment) as client:
        client.connect_until_valid(timeout=3)
        assert run_client(client, [b"ping?"], log=lambda line: None) == [b"echo: ping?"]
    host.join(timeout=3)
    assert not host.is_alive()
    assert "] ping?" in capsys.readouterr().out


def test_cli_reports_an_invalid_assignment_with_exit_code_1(emulator, tmp_path, capsys):
    _, client_assignment = assignments(ready_session(emulator))
    client_assignment["session_authorization_token"] ^= 1
    path = tmp_path / "client.json"
    path.write_text(json.dumps(client_assignment))
    assert play.main(["--assignment", str(path), "--timeout", "2"]) == 1
    assert "Invalid" in capsys.readouterr().err


def test_cli_needs_an_assignment_or_every_flag(capsys):
    with pytest.raises(SystemExit) as exited:
        play.main(["--relay-ip", "127.0.0.1", "--role", "client"])
    assert exited.value.code == 2
    assert "--assignment" in capsys.readouterr().err


def test_cli_refuses_an_assignment_missing_a_field(tmp_path, capsys):
    path = tmp_path / "client.json"
    path.write_text(json.dumps({"role": "client", "relay": {"ip": "127.0.0.1", "port": 9}}))
    with pytest.raises(SystemExit) as exited:
        play.main(["--assignment", str(path)])
    assert exited.value.code == 2
    assert "unusable relay assignment" in capsys.readouterr().err

"""A reference game client for the Edgegap relay: what a game does with its relay assignment.

When a match starts, the lobby service hands every player an assignment (design.md §4):

    {"role": "server" | "client",
     "relay": {"host": "...", "ip": "...", "port": 32000, "protocol": "UDP"},
     "session_authorization_token": 3500589645,
     "user_authorization_token": 21986334, ...}

The player with role `server` hosts the match; the others are clients. Each opens one UDP socket
to the relay at that port (the host's port differs from the clients'), then:

1. PINGs right away and every 500 ms, forever: the PING is both login and keepalive. The relay
   answers Checking, then Valid once it has validated the tokens (1-2 s at Edgegap), or Invalid.
2. Once Valid, exchanges DATA. A client's DATA goes to the host; the host's DATA names the client
   it is for by the connection id the relay attached to that client's DATA.

`RelayPeer` does exactly that with a blocking socket, so it reads top to bottom; a game engine
does the same from its network tick. The byte layout lives in `relays.protocol`.

From a shell, with the emulator running (`python manage.py relay_emulator`):

    python -m relays.play --assignment host.json               # echoes what clients send
    python -m relays.play --assignment client.json --messages 5
    python -m relays.play --relay-ip 127.0.0.1 --port 40001 --role client \\
        --session-token 3500589645 --user-token 21986334
"""

from __future__ import annotations

import argparse
import collections
import json
import socket
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from relays.protocol import (
    MAX_PAYLOAD,
    PingReply,
    PingState,
    ProtocolError,
    RelayData,
    decode_relay_packet,
    encode_client_data,
    encode_host_data,
    encode_ping,
)

PING_INTERVAL = 0.5  # the relay expects a PING every 100 ms to 1 s; Edgegap's samples use 500 ms
ROLES = ("server", "client")

_FATAL_STATES = {
    PingState.INVALID: "the relay refused our tokens (Invalid): check the session token, this "
    "player's own user token, and the port for its role (the host uses the server port); "
    "a player removed from the match is refused too",
    PingState.SESSION_TIMEOUT: "the relay ended the session (SessionTimeout): the host went silent",
    PingState.ERROR: "the relay reported an error (Error)",
}


class RelayError(Exception):
    """The relay refused or ended this peer's session; `state` says how."""

    def __init__(self, state: PingState) -> None:
        super().__init__(_FATAL_STATES[state])
        self.state = state


class RelayPeer:
    """One player's UDP conversation with the relay.

    `role` is "server" for the match host and "client" for everyone else. Typical use:

        with RelayPeer.from_assignment(assignment) as peer:
            peer.connect_until_valid()
            peer.send(b"hello")  # a client; the host passes connection_id=...
            data = peer.recv(timeout=1.0)  # RelayData or None; pings keep going meanwhile

    Both `connect_until_valid` and `recv` send the keepalive PINGs on schedule (every
    `ping_interval` seconds), so call `recv` regularly for as long as the match runs: a peer that
    stops pinging is dropped by the relay.
    """

    def __init__(
        self,
        relay_ip: str,
        port: int,
        *,
        session_token: int,
        user_token: int,
        role: str,
        ping_interval: float = PING_INTERVAL,
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be 'server' or 'client', got {role!r}")
        self.relay_address = (relay_ip, port)
        self.session_token = session_token
        self.user_token = user_token
        self.is_host = role == "server"
        self.ping_interval = ping_interval
        self.state = PingState.DISCONNECTED
        # The PING never changes, and encoding it now rejects bad tokens before any network I/O.
        self._ping = encode_ping(user_token, session_token)
        self._next_ping = 0.0
        self._inbox: collections.deque[RelayData] = collections.deque()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # A connected UDP socket receives from the relay's address only: stray datagrams are
        # filtered by the kernel.
        self._sock.connect(self.relay_address)

    @classmethod
    def from_assignment(cls, assignment: Mapping[str, Any], **options: Any) -> RelayPeer:
        """A peer for the assignment the lobby service handed this player (design.md §4).

        `options` go to the constructor (`ping_interval`).
        """
        relay = assignment["relay"]
        return cls(
            relay["ip"],  # `relay.host` works too; the IP spares a DNS lookup
            relay["port"],
            session_token=assignment["session_authorization_token"],
            user_token=assignment["user_authorization_token"],
            role=assignment["role"],
            **options,
        )

    def connect_until_valid(self, timeout: float = 10.0) -> None:
        """PING until the relay answers Valid.

        Raises `RelayError` when the relay answers Invalid (or another fatal state), and
        `TimeoutError` when it is not Valid within `timeout` seconds (no relay at that address,
        a firewall, or validation still running).
        """
        deadline = time.monotonic() + timeout
        while self.state is not PingState.VALID:
            packet = self._next_packet(deadline)
            if packet is None:
                raise TimeoutError(
                    f"relay {self.relay_address[0]}:{self.relay_address[1]} did not validate us "
                    f"within {timeout:g} s (last state: {self.state.name})"
                )
            if isinstance(packet, RelayData):
                self._inbox.append(packet)  # early data is the game's, not the handshake's

    def send(self, payload: bytes, connection_id: int | None = None) -> None:
        """Send game data: a client's goes to the host, the host's to client `connection_id`.

        Send only once Valid: the relay drops DATA from a peer it has not validated.
        """
        if self.is_host:
            if connection_id is None:
                raise ValueError("the host must say which client the data is for: connection_id")
            datagram = encode_host_data(self.user_token, self.session_token, connection_id, payload)
        else:
            if connection_id is not None:
                raise ValueError("a client talks to the host only: no connection_id")
            datagram = encode_client_data(self.user_token, self.session_token, payload)
        self._sock.send(datagram)

    def recv(self, timeout: float = 1.0) -> RelayData | None:
        """The next game data, or None when none came within `timeout` seconds.

        For the host, `RelayData.connection_id` names the client that sent it. Raises
        `RelayError` if the relay ends this peer's session meanwhile (a kick, say).
        """
        if self._inbox:
            return self._inbox.popleft()
        deadline = time.monotonic() + timeout
        while (packet := self._next_packet(deadline)) is not None:
            if isinstance(packet, RelayData):
                return packet
        return None

    def close(self) -> None:
        # There is no "leave" message: the relay notices the silence.
        self._sock.close()

    def __enter__(self) -> RelayPeer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _next_packet(self, deadline: float) -> PingReply | RelayData | None:
        """Wait for one packet until `deadline`, pinging on schedule meanwhile."""
        while (now := time.monotonic()) < deadline:
            if now >= self._next_ping:
                self._sock.send(self._ping)
                self._next_ping = now + self.ping_interval
            self._sock.settimeout(max(min(deadline, self._next_ping) - now, 0.001))
            try:
                data = self._sock.recv(65535)  # more than a datagram may hold: no silent cut
            except TimeoutError:
                continue
            except ConnectionRefusedError:
                # ICMP "port unreachable" for an earlier datagram: nothing listens there (yet).
                # UDP has no connection to lose, so keep pinging until the deadline.
                continue
            try:
                packet = decode_relay_packet(data, for_host=self.is_host)
            except ProtocolError:
                continue  # garbled: UDP gives no guarantee, and one bad packet must not end a match
            if isinstance(packet, PingReply):
                self.state = packet.state
                if packet.state in _FATAL_STATES:
                    raise RelayError(packet.state)
            return packet
        return None


def run_host(
    peer: RelayPeer,
    should_stop: Callable[[], bool] = lambda: False,
    log: Callable[[str], None] = print,
) -> int:
    """Answer every client message with an echo, until `should_stop()`; return how many.

    Replies go back by the connection id the relay attached: that is all the host knows of a
    client (never its address).
    """
    answered = 0
    while not should_stop():
        # Short waits, so that `should_stop` is checked often; pings go on meanwhile.
        data = peer.recv(timeout=peer.ping_interval)
        if data is None:
            continue
        log(f"[conn {data.connection_id}] {data.payload.decode(errors='replace')}")
        peer.send((b"echo: " + data.payload)[:MAX_PAYLOAD], data.connection_id)
        answered += 1
    return answered


def run_client(
    peer: RelayPeer,
    messages: list[bytes],
    reply_timeout: float = 2.0,
    log: Callable[[str], None] = print,
) -> list[bytes]:
    """Send each message to the host and wait for its reply; return the replies received.

    UDP may lose a message or its reply: a missing reply is logged and skipped, not retried.
    """
    replies = []
    for message in messages:
        peer.send(message)
        reply = peer.recv(timeout=reply_timeout)
        if reply is None:
            log(f"no reply to {message.decode(errors='replace')!r} within {reply_timeout:g} s")
            continue
        log(f"reply: {reply.payload.decode(errors='replace')}")
        replies.append(reply.payload)
    return replies


def main(argv: list[str] | None = None) -> int:
    """The command line: connect with an assignment, then host (echo) or chat as a client."""
    parser = argparse.ArgumentParser(
        prog="python -m relays.play", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--assignment", help="JSON file holding this player's relay assignment")
    parser.add_argument("--relay-ip", help="relay IP (without --assignment)")
    parser.add_argument("--port", type=int, help="relay port for this role (without --assignment)")
    parser.add_argument("--session-token", type=int, help="session authorization token")
    parser.add_argument("--user-token", type=int, help="this player's user authorization token")
    parser.add_argument("--role", choices=ROLES, help="server (the host) or client")
    parser.add_argument("--messages", type=int, default=3, help="client: messages to send (3)")
    parser.add_argument("--duration", type=float, help="host: seconds to serve (default: forever)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to get Valid (10)")
    args = parser.parse_args(argv)

    manual = (args.relay_ip, args.port, args.session_token, args.user_token, args.role)
    if not args.assignment and None in manual:
        parser.error(
            "give --assignment, or all of --relay-ip --port --session-token --user-token --role"
        )
    try:
        peer = _peer(args)
    except UsageError as exc:
        # One line a player can act on, not a traceback; 2 like any other usage error.
        print(f"play: unusable relay assignment: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    with peer:
        try:
            peer.connect_until_valid(timeout=args.timeout)
            ip, port = peer.relay_address
            print(f"valid: relay {ip}:{port} accepted us as {'host' if peer.is_host else 'client'}")
            if peer.is_host:
                deadline = time.monotonic() + (args.duration or float("inf"))
                run_host(peer, should_stop=lambda: time.monotonic() >= deadline)
                return 0
            messages = [f"hello {n}".encode() for n in range(1, args.messages + 1)]
            replies = run_client(peer, messages)
            return 0 if len(replies) == len(messages) else 1
        except (RelayError, TimeoutError) as exc:
            print(f"play: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0


class UsageError(Exception):
    """What is wrong with the command line or the assignment file, in one sentence."""


def load_assignment(path: str) -> dict:
    """The assignment in the JSON file at `path`: the assignment itself, or the whole
    `relay.assignment` event holding it (its `data`), as a player may save either."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a text file: a relay assignment is JSON") from None
    try:
        assignment = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{path} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if isinstance(assignment, dict) and "relay" not in assignment:
        assignment = assignment.get("data", assignment)  # the event, not its data
    if not isinstance(assignment, dict) or not isinstance(assignment.get("relay"), dict):
        raise UsageError(
            f'{path} is not a relay assignment: expected a JSON object with "relay", "role" and '
            'the two authorization tokens (the room page\'s "Copy everything as JSON")'
        )
    return assignment


def _peer(args: argparse.Namespace) -> RelayPeer:
    """The peer the command line (or its assignment file) describes; UsageError if unusable."""
    source = args.assignment or "the command line"
    try:
        if args.assignment:
            return RelayPeer.from_assignment(load_assignment(args.assignment))
        return RelayPeer(
            args.relay_ip,
            args.port,
            session_token=args.session_token,
            user_token=args.user_token,
            role=args.role,
        )
    except KeyError as exc:
        raise UsageError(f"{source}: the relay assignment has no {exc.args[0]!r}") from None
    except socket.gaierror as exc:
        raise UsageError(f"{source}: the relay address is unusable ({exc.strerror})") from None
    except (OSError, ValueError, TypeError, OverflowError) as exc:
        # ProtocolError is a ValueError: a token outside the unsigned 32-bit range lands here;
        # OverflowError: a port outside 0-65535.
        raise UsageError(f"{source}: {exc}") from None


if __name__ == "__main__":
    sys.exit(main())

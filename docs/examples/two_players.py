"""Two players, end to end: lobby, start, relay assignment, one datagram each way.

What a game client does, in one script (docs/api.md walks through it):

1. two guest players are created (`POST /api/v1/players/guest`), each with its own token;
2. the host creates a private lobby, the other player joins it by its join code;
3. both say they are ready, the host starts the match;
4. each player waits for its own `relay.assignment` event with status `ready`, by long-polling
   `GET /api/v1/players/me/events` (the default) or over the WebSocket `/ws/v1/events`
   (`--via websocket`);
5. each hands its assignment to `relays.play.RelayPeer`: the client sends a datagram through the
   relay, the host answers it;
6. the host ends the lobby, which deletes the relay session.

In a real game each player is its own process on its own machine; here they are two threads.
Both ways of following the stream survive a restart of the service: the socket reconnects (and
the long-poll retries) with `after=` the last event handled, so nothing is lost or seen twice.

    make run                                            # in another terminal
    .venv/bin/python docs/examples/two_players.py       # polling
    .venv/bin/python docs/examples/two_players.py --via websocket
    .venv/bin/python docs/examples/two_players.py --url http://localhost:9000  # or $LOBBY_URL

Needs `requests` and `websockets` (both in the project's requirements).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path

import requests
from websockets.exceptions import InvalidHandshake, WebSocketException
from websockets.sync.client import connect as websocket_connect

# relays.play, the reference relay client, lives in this repository (a game ships its own port of
# it): make it importable when this file is run by its path.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from relays.play import RelayPeer

HTTP_TIMEOUT = 10  # seconds, for every ordinary request
LONG_POLL = 25  # seconds a long-poll may wait for an event (the server allows up to 30)
SOCKET_CHECK = 20  # seconds of socket silence after which the REST stream is read anyway
RETRY_FIRST, RETRY_MOST = 0.5, 5.0  # seconds between reconnects: doubling from the first
UNAVAILABLE = {502, 503, 504}  # a proxy or the service saying "not now": try again


class Unreachable(Exception):
    """The lobby service did not answer (down, restarting, wrong address): worth a retry."""


class LobbyError(Exception):
    """An error answer from the lobby service: `code` is stable, `message` is for players."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class Player:
    """One player's view of the lobby service: its token and its place in its event stream."""

    def __init__(self, base_url: str, display_name: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()
        answer = self._call("POST", "/api/v1/players/guest", {"display_name": display_name})
        self.id = answer["id"]
        self.name = answer["display_name"]
        self.token = answer["token"]
        self.http.headers["Authorization"] = f"Token {self.token}"
        # Every event seen so far has a seq at or below this one: the cursor for `after`.
        self.last_seq = 0

    def _call(self, method: str, path: str, body: dict | None = None, **kwargs) -> dict | None:
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        response = self._request(method, path, body, **kwargs)
        if response.status_code == 429:  # throttled: wait as told, then try once more
            time.sleep(float(response.json()["error"]["retry_after"]))
            response = self._request(method, path, body, **kwargs)
        if response.status_code in UNAVAILABLE:
            raise Unreachable(f"{self.base_url} answered {response.status_code}")
        try:
            answer = response.json() if response.content else None
        except ValueError:  # an HTML page: some other web server
            raise LobbyError(
                response.status_code, "not_a_lobby_service", f"{self.base_url} is not one"
            ) from None
        if response.status_code >= 400:
            error = answer["error"]
            raise LobbyError(response.status_code, error["code"], error["message"])
        return answer

    def _request(self, method, path, body, **kwargs) -> requests.Response:
        try:
            return self.http.request(method, self.base_url + path, json=body, **kwargs)
        except requests.Timeout:
            raise Unreachable(f"{self.base_url} did not answer in time") from None
        except requests.ConnectionError:
            raise Unreachable(f"nothing answers at {self.base_url}") from None

    # --- lobby calls --------------------------------------------------------------------------

    def create_lobby(self, **fields) -> dict:
        return self._call("POST", "/api/v1/lobbies", fields)

    def join_by_code(self, code: str) -> dict:
        return self._call("POST", "/api/v1/lobbies/join", {"code": code})

    def set_ready(self, lobby_id: str, ready: bool = True) -> dict:
        return self._call("POST", f"/api/v1/lobbies/{lobby_id}/ready", {"ready": ready})

    def start(self, lobby_id: str) -> dict:
        return self._call("POST", f"/api/v1/lobbies/{lobby_id}/start")

    def end(self, lobby_id: str) -> None:
        self._call("POST", f"/api/v1/lobbies/{lobby_id}/end")

    # --- the event stream ---------------------------------------------------------------------

    def events_by_polling(self, deadline: float):
        """Yield this player's events, long-polling until `deadline`. A service that stops
        answering (a restart) is asked again, `after` the last event handled, until it answers."""
        retry = RETRY_FIRST
        while time.monotonic() < deadline:
            wait = max(1, min(LONG_POLL, int(deadline - time.monotonic())))
            try:
                page = self._call(
                    "GET",
                    "/api/v1/players/me/events",
                    params={"after": self.last_seq, "wait": wait},
                    timeout=wait + HTTP_TIMEOUT,
                )
            except Unreachable as exc:
                retry = self._pause(f"events: {exc}", retry, deadline)
                continue
            retry = RETRY_FIRST
            for event in page["events"]:
                self.last_seq = event["seq"]
                yield event

    def events_by_websocket(self, deadline: float):
        """Yield this player's events from the WebSocket until `deadline`, each once, in order.

        `after` makes the server replay what this player has not seen yet, so nothing is lost
        between the last event read and the socket opening (or across a reconnect). A push can
        still go missing on the server's side: a `seq` that skips ahead is filled from the REST
        stream first, and a socket quiet for SOCKET_CHECK seconds is checked against it too.
        """
        retry = RETRY_FIRST
        while time.monotonic() < deadline:
            try:
                # closing: a caller that stops reading also closes the socket.
                with contextlib.closing(self._socket_events(deadline)) as events:
                    for event in events:
                        retry = RETRY_FIRST  # it is serving again
                        yield event
                return  # the deadline
            except (OSError, WebSocketException, Unreachable) as exc:
                # The socket dropped (a deploy, a restart, the network) or cannot open yet: open
                # a new one `after` the last event handled, which replays the rest.
                if isinstance(exc, InvalidHandshake) and not _retryable_handshake(exc):
                    raise  # refused for good (403: a bad token): retrying will not help
                retry = self._pause(f"socket: {exc or type(exc).__name__}", retry, deadline)

    def _socket_events(self, deadline: float):
        """One socket's events, from its opening (with `after`) until it closes or `deadline`."""
        url = self.base_url.replace("http", "ws", 1) + f"/ws/v1/events?after={self.last_seq}"
        headers = {"Authorization": f"Token {self.token}"}
        with websocket_connect(
            url, additional_headers=headers, open_timeout=HTTP_TIMEOUT
        ) as socket:
            while (left := deadline - time.monotonic()) > 0:
                try:
                    event = json.loads(socket.recv(timeout=min(left, SOCKET_CHECK)))
                except TimeoutError:
                    yield from self._events_from_rest(up_to=None)
                    continue
                if event["seq"] <= self.last_seq:
                    continue  # already had it (from the REST stream)
                if event["seq"] > self.last_seq + 1:
                    yield from self._events_from_rest(up_to=event["seq"])
                self.last_seq = event["seq"]
                yield event

    def _pause(self, why: str, retry: float, deadline: float) -> float:
        """Wait `retry` seconds (not past `deadline`) before trying again; the next wait."""
        print(f"{self.name}: {why}; again in {retry:g} s", file=sys.stderr)
        time.sleep(max(0.0, min(retry, deadline - time.monotonic())))
        return min(retry * 2, RETRY_MOST)

    def _events_from_rest(self, up_to: int | None):
        """The events after `last_seq` (and before `up_to`) from `GET /players/me/events`."""
        page = self._call("GET", "/api/v1/players/me/events", params={"after": self.last_seq})
        for event in page["events"]:
            if up_to is not None and event["seq"] >= up_to:
                return
            self.last_seq = event["seq"]
            yield event

    def wait_for_assignment(self, lobby_id: str, via: str, timeout: float = 90.0) -> dict:
        """This player's relay assignment for the lobby, once its status is `ready`."""
        deadline = time.monotonic() + timeout
        events = self.events_by_websocket if via == "websocket" else self.events_by_polling
        with contextlib.closing(events(deadline)) as stream:  # closing also closes the socket
            for event in stream:
                data = event["data"]
                if event["type"] == "relay.assignment" and data["lobby_id"] == lobby_id:
                    if data["status"] == "ready":
                        return data
                    if data["status"] == "failed":  # the host may start again: a new one comes
                        print(f"{self.name}: no relay this time: {data['error']}")
                elif event["type"] in ("lobby.closed", "lobby.kicked") and (
                    data["lobby_id"] == lobby_id
                ):
                    raise RuntimeError(f"{self.name}: {event['type']} {data}")
        raise TimeoutError(f"{self.name}: no relay assignment within {timeout:g} s")


# --- the relay: what each side of the match does with its assignment ----------------------------


def host_side(assignment: dict, results: dict) -> None:
    """The host (role "server"): answer the first message a client sends."""
    with RelayPeer.from_assignment(assignment) as peer:
        peer.connect_until_valid()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            data = peer.recv(timeout=1.0)  # keeps PINGing while it waits
            if data is not None:
                results["host got"] = data.payload
                peer.send(b"welcome, " + data.payload, connection_id=data.connection_id)
                # Stay a moment, still pinging, in case the reply is lost and the client asks
                # again (UDP promises nothing).
                while peer.recv(timeout=1.0) is not None:
                    peer.send(b"welcome again", connection_id=data.connection_id)
                return


def client_side(assignment: dict, results: dict, name: str) -> None:
    """A client (role "client"): say hello to the host until it answers."""
    with RelayPeer.from_assignment(assignment) as peer:
        peer.connect_until_valid()
        for _ in range(20):  # the host may not be Valid yet: its datagrams would be dropped
            peer.send(f"hello from {name}".encode())
            reply = peer.recv(timeout=1.0)
            if reply is not None:
                results["client got"] = reply.payload
                return


def _retryable_handshake(exc: InvalidHandshake) -> bool:
    """A handshake the server may accept later: an unavailable answer, or no HTTP answer."""
    response = getattr(exc, "response", None)
    return response is None or response.status_code in UNAVAILABLE


def player_thread(player: Player, lobby_id: str, via: str, results: dict) -> None:
    try:
        assignment = player.wait_for_assignment(lobby_id, via)
        relay = assignment["relay"]
        print(f"{player.name}: {assignment['role']} at {relay['ip']}:{relay['port']} ({via})")
        if assignment["role"] == "server":
            host_side(assignment, results)
        else:
            client_side(assignment, results, player.name)
    except Exception as exc:  # reported by the main thread
        results[f"{player.name} failed"] = repr(exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--url", default=os.environ.get("LOBBY_URL", "http://localhost:8000"), help="the service"
    )
    parser.add_argument("--via", choices=["poll", "websocket"], default="poll")
    args = parser.parse_args(argv)
    if not args.url.startswith(("http://", "https://")):
        print(f"two_players: --url must start with http(s)://: {args.url!r}", file=sys.stderr)
        return 2
    try:
        return play(args.url, args.via)
    except (Unreachable, LobbyError) as exc:
        # Said in one line, where the user looks last, rather than as a traceback.
        hint = " (is it running? `make run`, or give --url)" if isinstance(exc, Unreachable) else ""
        print(f"two_players: {exc}{hint}", file=sys.stderr)
        return 2


def play(url: str, via: str) -> int:
    """The whole match: 0 when both sides heard each other through the relay."""
    host = Player(url, "Host Hana")
    guest = Player(url, "Guest Gus")

    lobby = host.create_lobby(name="Two players", max_players=2, visibility="private")
    lobby_id = lobby["id"]
    print(f"lobby {lobby_id}: join code {lobby['join_code']}")
    guest.join_by_code(lobby["join_code"])  # codes are shared out of band: chat, a screen
    guest.set_ready(lobby_id)
    host.set_ready(lobby_id)
    started = host.start(lobby_id)
    print(f"started: state {started['state']}, version {started['version']}")

    results: dict = {}
    threads = [
        threading.Thread(target=player_thread, args=(player, lobby_id, via, results))
        for player in (host, guest)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        host.end(lobby_id)  # closes the lobby and deletes the relay session
    for key, value in results.items():
        print(f"{key}: {value!r}")
    return 0 if "host got" in results and "client got" in results else 1


if __name__ == "__main__":
    sys.exit(main())

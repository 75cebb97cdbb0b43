"""Players as game clients see the service: HTTP calls and sockets against the live stack.

Every body and socket message is kept in a `Transcript`, so a test can check what crossed the wire
(the canary test looks for the Edgegap token in all of it).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import requests
import websockets


@dataclass
class Transcript:
    texts: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.texts.append(text)

    def contains(self, needle: str) -> bool:
        return any(needle in text for text in self.texts)


class ApiPlayer:
    def __init__(self, base_url: str, display_name: str, transcript: Transcript):
        self.base_url = base_url
        self.ws_url = base_url.replace("http://", "ws://")
        self.transcript = transcript
        self.http = requests.Session()
        created = self.call("POST", "/api/v1/players/guest", {"display_name": display_name}, 201)
        self.id, self.token = created["id"], created["token"]
        self.name = display_name
        self.last_seq = 0

    @property
    def auth(self):
        return {"Authorization": f"Token {self.token}"}

    def call(self, method, path, body=None, expect=200):
        headers = self.auth if hasattr(self, "token") else {}
        response = self.http.request(
            method, self.base_url + path, json=body, headers=headers, timeout=30
        )
        self.transcript.add(response.text)
        assert response.status_code == expect, (
            f"{method} {path}: {response.status_code} {response.text}"
        )
        return response.json() if response.content else None

    # --- polling -----------------------------------------------------------------------------

    def poll_until(self, predicate, timeout=20.0):
        """Long-poll the event stream until an event satisfies `predicate`; returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            page = self.call("GET", f"/api/v1/players/me/events?after={self.last_seq}&wait=5")
            for event in page["events"]:
                self.last_seq = event["seq"]
                if predicate(event):
                    return event
        raise AssertionError(f"{self.name}: no matching event within {timeout} s")

    # --- sockets -----------------------------------------------------------------------------

    async def connect(self, after: int | None = None):
        after = self.last_seq if after is None else after
        return await websockets.connect(
            f"{self.ws_url}/ws/v1/events?after={after}", additional_headers=self.auth
        )

    async def receive_until(self, socket, predicate, timeout=20.0):
        """Read the socket until a message satisfies `predicate`; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.name}: no matching message within {timeout} s")
            raw = await asyncio.wait_for(socket.recv(), remaining)
            self.transcript.add(raw)
            message = json.loads(raw)
            assert message["seq"] > self.last_seq, "an event was delivered twice"
            self.last_seq = message["seq"]
            if predicate(message):
                return message


def is_ready_assignment(event) -> bool:
    return event["type"] == "relay.assignment" and event["data"]["status"] == "ready"


def gather_lobby(base_url, transcript, players=4, **lobby):
    """A host and `players - 1` guests in a lobby, all ready. Returns (host, others, lobby)."""
    people = [ApiPlayer(base_url, f"player-{n}", transcript) for n in range(players)]
    host, *others = people
    created = host.call(
        "POST",
        "/api/v1/lobbies",
        {"name": "e2e match", "max_players": max(players, 2), "visibility": "private", **lobby},
        201,
    )
    for player in others:
        player.call("POST", "/api/v1/lobbies/join", {"code": created["join_code"]})
    for player in people:
        player.call("POST", f"/api/v1/lobbies/{created['id']}/ready", {"ready": True})
    return host, others, created

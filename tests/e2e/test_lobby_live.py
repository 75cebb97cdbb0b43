"""Lobbies end to end on real processes: uvicorn, a Celery worker, the relay emulator (HTTP and
UDP), and Redis. Players are game clients speaking HTTP, WebSockets and the relay's UDP."""

import asyncio
import re

import pytest
import requests

from relays.play import RelayPeer
from tests.e2e.players import Transcript, gather_lobby, is_ready_assignment
from tests.live import wait_until

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _check_assignments(assignments: dict, host, others):
    """Each player's own assignment: its role's port, the session token, its own user token."""
    host_view = assignments[host.id]
    assert host_view["role"] == "server"
    session_token = host_view["session_authorization_token"]
    user_tokens = set()
    for player in [host, *others]:
        view = assignments[player.id]
        assert view["status"] == "ready" and view["error"] is None
        assert view["session_authorization_token"] == session_token
        assert view["relay"]["protocol"] == "UDP" and view["relay"]["ip"] == "127.0.0.1"
        if player is not host:
            assert view["role"] == "client"
            assert view["relay"]["port"] != host_view["relay"]["port"]
        user_tokens.add(view["user_authorization_token"])
    assert len(user_tokens) == len(assignments), "every player has a token of its own"


def _play(host_assignment, client_assignment):
    """The reference game client: host and one client exchange DATA through the relay."""
    with (
        RelayPeer.from_assignment(host_assignment, ping_interval=0.1) as host,
        RelayPeer.from_assignment(client_assignment, ping_interval=0.1) as client,
    ):
        host.connect_until_valid(timeout=5)
        client.connect_until_valid(timeout=5)
        client.send(b"ready to play")
        received = host.recv(timeout=3)
        assert received is not None and received.payload == b"ready to play"
        host.send(b"go", connection_id=received.connection_id)
        reply = client.recv(timeout=3)
        assert reply is not None and reply.payload == b"go"


def test_four_players_get_their_assignments_over_sockets_and_play(worker_tasks):
    live, transcript = worker_tasks, Transcript()
    host, others, lobby = gather_lobby(live.base_url, transcript, players=4)

    async def scenario():
        sockets = {p.id: await p.connect() for p in [host, *others]}
        try:
            await asyncio.to_thread(host.call, "POST", f"/api/v1/lobbies/{lobby['id']}/start")
            received = await asyncio.gather(
                *(p.receive_until(sockets[p.id], is_ready_assignment) for p in [host, *others])
            )
            return {
                p.id: message["data"] for p, message in zip([host, *others], received, strict=True)
            }
        finally:
            for socket in sockets.values():
                await socket.close()

    assignments = asyncio.run(scenario())
    _check_assignments(assignments, host, others)
    # The same assignment by REST, and the lobby ready.
    assert host.call("GET", "/api/v1/players/me/assignment") == assignments[host.id]
    assert host.call("GET", f"/api/v1/lobbies/{lobby['id']}")["state"] == "ready"
    _play(assignments[host.id], assignments[others[0].id])

    host.call("POST", f"/api/v1/lobbies/{lobby['id']}/end", expect=204)
    others[0].poll_until(lambda event: event["type"] == "lobby.closed")
    with live.edgegap() as edgegap:
        wait_until(lambda: not edgegap.list_sessions().sessions, "the relay session deleted", live)


def test_polling_only_players_get_their_assignments_and_play(worker_tasks):
    live, transcript = worker_tasks, Transcript()
    host, others, lobby = gather_lobby(live.base_url, transcript, players=3)
    host.call("POST", f"/api/v1/lobbies/{lobby['id']}/start")
    assignments = {p.id: p.poll_until(is_ready_assignment)["data"] for p in [host, *others]}
    _check_assignments(assignments, host, others)
    for player in [host, *others]:
        assert player.call("GET", "/api/v1/players/me/assignment") == assignments[player.id]
    _play(assignments[host.id], assignments[others[1].id])


def test_a_socket_closed_before_the_assignment_gets_it_on_reconnect(worker_tasks):
    live, transcript = worker_tasks, Transcript()
    host, others, lobby = gather_lobby(live.base_url, transcript, players=2)
    guest = others[0]

    async def read_everything_so_far():
        socket = await guest.connect(after=0)
        await guest.receive_until(
            socket, lambda m: m["type"] == "lobby.updated" and m["data"]["version"] == lobby_v()
        )
        await socket.close()

    def lobby_v():
        return guest.call("GET", f"/api/v1/lobbies/{lobby['id']}")["version"]

    asyncio.run(read_everything_so_far())
    seen = guest.last_seq
    host.call("POST", f"/api/v1/lobbies/{lobby['id']}/start")
    wait_until(
        lambda: host.call("GET", "/api/v1/players/me/assignment")["status"] == "ready",
        "the relay to be ready",
        live,
    )

    async def reconnect():
        socket = await guest.connect(after=seen)
        try:
            return await guest.receive_until(socket, is_ready_assignment, timeout=10)
        finally:
            await socket.close()

    assignment = asyncio.run(reconnect())["data"]
    assert assignment["role"] == "client"
    assert assignment == guest.call("GET", "/api/v1/players/me/assignment")


def test_the_edgegap_token_never_reaches_players_logs_or_admin(worker_tasks, django_user_model):
    live, transcript = worker_tasks, Transcript()
    canary = live.env["EDGEGAP_API_TOKEN"]
    assert canary.startswith("canary-")
    host, others, lobby = gather_lobby(live.base_url, transcript, players=2)

    async def run_match():
        socket = await others[0].connect()
        try:
            await asyncio.to_thread(host.call, "POST", f"/api/v1/lobbies/{lobby['id']}/start")
            return await others[0].receive_until(socket, is_ready_assignment)
        finally:
            await socket.close()

    guest_assignment = asyncio.run(run_match())["data"]
    host_assignment = host.poll_until(is_ready_assignment)["data"]
    host.call("GET", "/api/v1/players/me/assignment")
    host.call("GET", "/api/schema/?format=json")
    # An operator browses the admin: sessions, seats and the lobby.
    django_user_model.objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
    admin = requests.Session()
    login_page = admin.get(f"{live.base_url}/admin/login/", timeout=10)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
    admin.post(
        f"{live.base_url}/admin/login/?next=/admin/",
        data={"username": "ops", "password": "a-long-password-1", "csrfmiddlewaretoken": csrf},
        timeout=10,
    )
    for path in ("/admin/relays/relaysession/", f"/admin/lobby/lobby/{lobby['id']}/change/"):
        page = admin.get(f"{live.base_url}{path}", timeout=10)
        assert page.status_code == 200 and "Log in" not in page.text
        transcript.add(page.text)
    session_pages = admin.get(f"{live.base_url}/admin/relays/relaysession/", timeout=10).text
    session_id = re.search(r"/admin/relays/relaysession/([0-9a-f-]{36})/change/", session_pages)
    detail = admin.get(f"{live.base_url}/admin/relays/relaysession/{session_id.group(1)}/change/")
    transcript.add(detail.text)
    # Admin pages mask relay tokens as well.
    assert str(guest_assignment["user_authorization_token"]) not in detail.text
    assert str(host_assignment["session_authorization_token"]) not in detail.text

    assert not transcript.contains(canary)
    assert canary not in live.log_path.read_text(errors="replace")
